"""SyncBatchNorm: on 2 ranks under DistributedDataParallel (mpiexec, an uneven 4 + 3 batch) it
equals one process's BatchNorm2d on the concatenated batch, where per-rank BatchNorm2d does not;
in one process, its op is checked by finite differences and against PyTorch's BatchNorm2d."""

import importlib.util

import numpy as np
import pytest

import minidl
import minidl.distributed as dist
from minidl.distributed.communicator import SingleProcess
from minidl.ops.sync_batch_norm import SyncBatchNorm as SyncBatchNormOp

from conftest import SCRIPTS, run_mpi, why_no_mpi
from helpers import gradcheck_with_random_dy

_spec = importlib.util.spec_from_file_location("ddp_cases", SCRIPTS / "ddp_cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

RTOL, ATOL = 1e-10, 1e-13
SPLIT = cases.SPLITS["uneven"]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    reason = why_no_mpi()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("syncbn")
    run_mpi("ddp", folder, "bn_local", "bn_sync", "bn_sync_unet", "strict", timeout=300)
    return lambda case: [dict(np.load(folder / f"{case}_rank{r}.npz")) for r in range(2)]


def one_process(kind):
    """BatchNorm2d in one process on the 7 concatenated samples: output, gradients, buffers."""
    model = cases.make_model(kind, seed=100)
    output = model(minidl.tensor(cases.global_batch(kind, sum(SPLIT))))
    cases.loss_fn(output).backward()
    want = cases.named_grads(model)
    want.update({f"buffer.{name}": b.numpy() for name, b in model.named_buffers()})
    return output.detach().numpy(), want


def compare(got, want_output, want, r):
    np.testing.assert_allclose(got.pop("output"), cases.shard(want_output, SPLIT, r), rtol=RTOL, atol=ATOL,
                               err_msg=f"rank {r}: output")
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=f"rank {r}: {name}")


@pytest.mark.parametrize("case, kind", [("bn_sync", "convnet_bn"), ("bn_sync_unet", "unet_bn")])
def test_sync_batch_norm_equals_one_process(ranks, case, kind):
    want_output, want = one_process(kind)
    for r, got in enumerate(ranks(case)):
        compare(got, want_output, want, r)


def test_on_the_strict_device(ranks):
    """DDP and SyncBatchNorm write their array code for any device: the strict one refuses every
    implicit trip to the host (as CuPy's arrays do)."""
    want = {k: v for k, v in one_process("convnet_bn")[1].items() if not k.startswith("buffer.")}
    for r, got in enumerate(ranks("strict")):
        assert sorted(got) == sorted(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=f"rank {r}: {name}")


def test_per_rank_batch_norm_differs_from_one_process(ranks):
    want_output, want = one_process("convnet_bn")
    for r, got in enumerate(ranks("bn_local")):
        with pytest.raises(AssertionError):
            compare(dict(got), want_output, want, r)
        assert not np.allclose(got["output"], cases.shard(want_output, SPLIT, r))
        assert not np.allclose(got["buffer.bn.running_mean"], want["buffer.bn.running_mean"])
        assert not np.allclose(got["conv1.weight"], want["conv1.weight"])


# --- one process -------------------------------------------------------------------------------
def sync_op(x, weight, bias, running=None, momentum=0.1, eps=1e-5):
    """The op with a job-of-one communicator: batch norm's math through the synchronised route."""
    running_mean, running_var = running if running is not None else (None, None)
    return SyncBatchNormOp.apply(x, weight, bias, running_mean, running_var, momentum, eps, SingleProcess())


@pytest.mark.parametrize("shape", [(3, 5, 4, 3), (5, 3), (2, 3, 7)])
def test_sync_op_gradcheck_with_random_dy(shape):
    rng = np.random.default_rng(0)
    C = shape[1]
    assert gradcheck_with_random_dy(sync_op, [rng.standard_normal(shape) * 2 + 1, rng.standard_normal(C),
                                              rng.standard_normal(C)])


@pytest.mark.parametrize("shape", [(3, 5, 4, 3), (7, 3, 1, 5)])
def test_sync_op_on_one_rank_equals_torch_batch_norm(torch, shape):
    rng = np.random.default_rng(1)
    C = shape[1]
    x, w, b = rng.standard_normal(shape) * 3 + 2, rng.standard_normal(C), rng.standard_normal(C)
    dy = rng.standard_normal(shape)
    stats = [minidl.zeros(C, dtype=minidl.float64), minidl.ones(C, dtype=minidl.float64)]
    ours = [minidl.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = sync_op(*ours, running=stats, momentum=0.3)
    (y * minidl.tensor(dy)).sum().backward()
    bn = torch.nn.BatchNorm2d(C, momentum=0.3).double()
    theirs = torch.tensor(x, requires_grad=True)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(w))
        bn.bias.copy_(torch.tensor(b))
    y_ref = bn(theirs)
    (y_ref * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), y_ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    for got, want in ((ours[0].grad, theirs.grad), (ours[1].grad, bn.weight.grad), (ours[2].grad, bn.bias.grad),
                      (stats[0], bn.running_mean), (stats[1], bn.running_var)):
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.fixture
def single_process():
    dist.destroy_process_group()
    dist.init_process_group()
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("initialised", [False, True])
def test_module_on_one_rank_equals_batch_norm(request, initialised):
    if initialised:
        request.getfixturevalue("single_process")
    else:
        dist.destroy_process_group()
    model = cases.make_model("convnet_bn", seed=5)
    twin = minidl.nn.SyncBatchNorm.convert_sync_batchnorm(cases.make_model("convnet_bn", seed=5))
    assert isinstance(twin.bn, minidl.nn.SyncBatchNorm) and not isinstance(model.bn, minidl.nn.SyncBatchNorm)
    x = minidl.tensor(cases.global_batch("convnet_bn", 5))
    for mode in ("train", "eval"):
        getattr(model, mode)()
        getattr(twin, mode)()
        y, y_twin = model(x), twin(x)
        np.testing.assert_array_equal(y_twin.detach().numpy(), y.detach().numpy())
        cases.loss_fn(y).backward()
        cases.loss_fn(y_twin).backward()
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            np.testing.assert_array_equal(q.grad.numpy(), p.grad.numpy(), err_msg=name)
        for (name, b), c in zip(model.named_buffers(), twin.buffers()):
            np.testing.assert_array_equal(c.numpy(), b.numpy(), err_msg=name)


def test_convert_sync_batchnorm_keeps_tensors_and_mode():
    model = minidl.nn.Sequential(minidl.nn.Conv2d(2, 3, 1), minidl.nn.BatchNorm2d(3, momentum=0.2, eps=1e-3),
                                 minidl.nn.Sequential(minidl.nn.BatchNorm1d(4, affine=False)))
    model[1].eval()
    weight, running_mean = model[1].weight, model[1].running_mean
    keys = list(model.state_dict())
    converted = minidl.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    bn, bn1 = converted[1], converted[2][0]
    assert type(bn) is minidl.nn.SyncBatchNorm and type(bn1) is minidl.nn.SyncBatchNorm
    assert bn.weight is weight and bn.running_mean is running_mean
    assert (bn.momentum, bn.eps, bn.training, bn1.training, bn1.affine, bn1.weight) == (0.2, 1e-3, False, True, False, None)
    assert list(converted.state_dict()) == keys
    alone = minidl.nn.SyncBatchNorm.convert_sync_batchnorm(minidl.nn.BatchNorm2d(3))
    assert type(alone) is minidl.nn.SyncBatchNorm


def test_bad_input():
    with pytest.raises(ValueError, match=r"SyncBatchNorm: expected at least 2D input \(got 1D input\)"):
        minidl.nn.SyncBatchNorm(3)(minidl.ones(3))
