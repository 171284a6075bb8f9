"""DistributedDataParallel on 2 ranks (mpiexec) against one process on the concatenated batch.

The script tests/distributed/scripts/ddp.py runs every case once (a module-scoped run); each
test here computes one process's answer with the plain model and compares (float64, rtol 1e-10).
"""

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl
import minidl.distributed as dist
from minidl.nn.parallel import DistributedDataParallel as DDP
from minidl.nn.parallel.distributed import assign_buckets

from conftest import SCRIPTS, run_mpi, why_no_mpi

_spec = importlib.util.spec_from_file_location("ddp_cases", SCRIPTS / "ddp_cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

RTOL, ATOL = 1e-10, 1e-13
DDP_CASES = ["grads_convnet", "grads_unet", "grads_uneven", "adam", "no_sync", "unused"]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Run the DDP cases once on 2 ranks; ``ranks(case)`` is [rank 0's, rank 1's] results."""
    reason = why_no_mpi()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("ddp")
    run_mpi("ddp", folder, *DDP_CASES, timeout=300)
    return lambda case: [dict(np.load(folder / f"{case}_rank{r}.npz")) for r in range(2)]


def one_process(kind, n, steps=(0,)):
    """The plain model (rank 0's seed) on the concatenated batch: loss.backward() per step."""
    model = cases.make_model(kind, seed=100)
    for step in steps:
        cases.loss_fn(model(minidl.tensor(cases.global_batch(kind, n, step)))).backward()
    return model


def assert_same(got, want, what):
    assert sorted(got) == sorted(want), what
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=f"{what}: {name}")


@pytest.mark.parametrize("case, kind, split", [("grads_convnet", "convnet", "even"),
                                               ("grads_unet", "unet", "even"),
                                               ("grads_uneven", "convnet", "uneven")])
def test_every_rank_has_the_one_process_gradient(ranks, case, kind, split):
    want = cases.named_grads(one_process(kind, sum(cases.SPLITS[split])))
    for r, got in enumerate(ranks(case)):
        assert_same(got, want, f"{case}, rank {r}")


def test_five_adam_steps_give_the_same_parameters_and_identical_replicas(ranks):
    model = cases.make_model("convnet", seed=100)
    optimizer = minidl.optim.Adam(model.parameters(), lr=0.01)
    n = sum(cases.SPLITS["uneven"])
    for step in range(5):
        optimizer.zero_grad()
        cases.loss_fn(model(minidl.tensor(cases.global_batch("convnet", n, step)))).backward()
        optimizer.step()
    want = cases.named_params(model)
    got = ranks("adam")
    for r in range(2):
        assert_same({k: v for k, v in got[r].items() if k != "raw_bytes"}, want, f"adam, rank {r}")
    assert got[0]["raw_bytes"].tobytes() == got[1]["raw_bytes"].tobytes(), "the replicas differ"


def test_no_sync_accumulates_locally_then_reduces_everything(ranks):
    n = sum(cases.SPLITS["even"])
    want = cases.named_grads(one_process("convnet", n, steps=(0, 1, 2)))
    got = ranks("no_sync")
    for r in range(2):
        assert_same(got[r], want, f"no_sync, rank {r}")
    local = ranks("no_sync_local")  # inside no_sync the two ranks' gradients are their own
    assert not np.allclose(local[0]["head.weight"], local[1]["head.weight"])


def test_unused_parameter(ranks):
    for r, got in enumerate(ranks("unused")):
        message = str(got.pop("message"))
        assert message.startswith("Expected to have finished reduction in the prior iteration")
        assert f"Parameter indices which did not receive grad for rank {r}: 2 3" in message
        assert "unused.weight, unused.bias" in message
        assert got.pop("unused_grad_is_none")  # find_unused_parameters=True leaves it None
        want = cases.named_grads(one_process("unused", sum(cases.SPLITS["even"])))
        assert_same(got, want, f"find_unused_parameters=True, rank {r}")


# --- one process -------------------------------------------------------------------------------
@pytest.fixture
def single_process():
    dist.destroy_process_group()
    dist.init_process_group()
    yield
    dist.destroy_process_group()


def test_world_size_one_is_the_plain_module(single_process):
    x = minidl.tensor(cases.global_batch("convnet", 5))
    plain = cases.make_model("convnet", seed=3)
    wrapped = DDP(cases.make_model("convnet", seed=3))
    for step in range(2):  # two steps: the reduction state resets after each
        out_plain, out_ddp = plain(x), wrapped(x)
        np.testing.assert_array_equal(out_ddp.detach().numpy(), out_plain.detach().numpy())
        cases.loss_fn(out_plain).backward()
        cases.loss_fn(out_ddp).backward()
        for (name, p), q in zip(plain.named_parameters(), wrapped.module.parameters()):
            np.testing.assert_array_equal(q.grad.numpy(), p.grad.numpy(), err_msg=name)
    assert list(wrapped.state_dict()) == ["module." + k for k in plain.state_dict()]
    assert wrapped.module is wrapped._modules["module"]


def test_unused_parameter_error_in_one_process(single_process):
    model = DDP(cases.make_model("unused", seed=0))
    x = minidl.tensor(cases.global_batch("unused", 3))
    cases.loss_fn(model(x)).backward()
    with minidl.no_grad():
        model(x)  # no gradients: no new iteration, no error
    with pytest.raises(RuntimeError, match="Expected to have finished reduction in the prior iteration"):
        model(x)


def test_bad_arguments(single_process):
    with pytest.raises(TypeError, match="DistributedDataParallel: module must be a minidl.nn.Module, got int"):
        DDP(3)
    with pytest.raises(ValueError, match="bucket_cap_mb must be a positive number, got -1"):
        DDP(minidl.nn.Linear(2, 2), bucket_cap_mb=-1)
    with pytest.raises(RuntimeError, match="doesn't have any parameter that requires a gradient"):
        DDP(minidl.nn.ReLU())


def test_needs_a_process_group():
    dist.destroy_process_group()
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DDP(minidl.nn.Linear(2, 2))


def test_buckets_in_reverse_registration_order(single_process):
    layers = [minidl.nn.Linear(512, 512) for _ in range(4)]  # 1 MiB of float32 weight each
    model = DDP(minidl.nn.Sequential(*layers), bucket_cap_mb=2)
    # registration order: w0 | b0 w1 b1 w2 | b2 w3 b3: the first bucket (limit 1 MiB) is full
    # with w0, the next (2 MiB) once w2 is in
    assert [b.indices for b in model._buckets] == [[5, 6, 7], [1, 2, 3, 4], [0]]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=20),
       kinds=st.data(), limits=st.lists(st.integers(1, 8000), min_size=1, max_size=3))
def test_bucket_assignment_covers_every_parameter_once(sizes, kinds, limits):
    dtypes = [kinds.draw(st.sampled_from(["float32", "float64"])) for _ in sizes]
    buckets = assign_buckets(sizes, dtypes, limits)
    flat = [i for bucket in buckets for i in bucket]
    assert sorted(flat) == list(range(len(sizes)))  # each parameter exactly once
    for bucket in buckets:
        assert bucket == sorted(bucket) and len({dtypes[i] for i in bucket}) == 1
    firsts = [bucket[0] for bucket in buckets]
    assert firsts == sorted(firsts, reverse=True)  # the last-registered parameters first
    for dtype in set(dtypes):  # in registration order, every bucket but the last is full
        mine = sorted((b for b in buckets if dtypes[b[0]] == dtype), key=lambda b: b[0])
        for k, bucket in enumerate(mine[:-1]):
            limit = limits[min(k, len(limits) - 1)]
            assert sum(sizes[i] for i in bucket) >= limit > sum(sizes[i] for i in bucket[:-1])
