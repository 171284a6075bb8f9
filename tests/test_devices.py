"""Devices (minidl/backend/devices.py): names, moves, the default device, the strict test device's
refusals, and what a missing GPU says. The op suites run on every device through the ``device``
fixture (tests/conftest.py); this file tests the seam itself."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl.backend import array_module, kernel_module, kernels_for, strict


def test_device_names_as_in_pytorch():
    assert str(minidl.device("cpu")) == "cpu" and repr(minidl.device("cpu")) == "device(type='cpu')"
    cuda = minidl.device("cuda:1")
    assert (cuda.type, cuda.index) == ("cuda", 1) and str(cuda) == "cuda:1"
    assert repr(cuda) == "device(type='cuda', index=1)"
    assert minidl.device("cuda", 1) == cuda == "cuda:1" and minidl.device(cuda) == cuda
    assert minidl.device("cpu") == "cpu" and minidl.device("cpu") != "strict"
    assert len({minidl.device("strict"), minidl.device("strict")}) == 1
    for bad, error in [("tpu", "unknown device type 'tpu'"), ("cuda:x", "invalid device string"),
                       ("cpu:1", "cpu has only device 0")]:
        with pytest.raises(ValueError, match=error):
            minidl.device(bad)


def test_tensors_are_made_on_the_device_asked_for_or_the_default():
    assert minidl.zeros(2).device == "cpu"
    for make in (lambda **kw: minidl.tensor([1.0, 2.0], **kw), lambda **kw: minidl.zeros(2, **kw),
                 lambda **kw: minidl.randn(2, **kw), lambda **kw: minidl.arange(3, **kw),
                 lambda **kw: minidl.full((2,), 3.0, **kw), lambda **kw: minidl.empty(2, **kw)):
        t = make(device="strict")
        assert t.device == "strict" and isinstance(t._data, strict.StrictArray)
    minidl.set_default_device("strict")
    try:
        assert minidl.ones(2).device == "strict" and nn.Linear(2, 3).weight.device == "strict"
        assert minidl.zeros_like(minidl.ones(2, device="cpu")).device == "cpu"  # the input's device
    finally:
        minidl.set_default_device(None)
    assert minidl.get_default_device() == "cpu"


def test_moving_is_differentiable_and_returns_self_when_nothing_changes():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x.to("strict")
    assert y.device == "strict" and y.requires_grad
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    assert x.to("cpu") is x and x.cpu() is x and x.to(minidl.float32) is x
    assert x.to("cpu", copy=True) is not x
    z = x.to(device="strict", dtype=minidl.float64, non_blocking=True)
    assert (z.device, z.dtype) == ("strict", minidl.float64)
    other = minidl.zeros(1, dtype=minidl.float64, device="strict")
    assert (x.to(other).device, x.to(other).dtype) == ("strict", minidl.float64)


def test_a_module_moves_its_parameters_in_place_and_an_optimizer_follows():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = minidl.optim.Adam(model.parameters(), lr=0.1)
    weight = model[0].weight
    assert model.to("strict", memory_format=None) is model and weight is model[0].weight
    assert all(p.device == "strict" for p in model.parameters()) and model[1].running_mean.device == "strict"
    x, target = minidl.randn(5, 3, device="strict"), minidl.randint(0, 2, (5,), device="strict")
    before = weight.detach().numpy().copy()
    F.cross_entropy(model(x), target).backward()
    opt.step()
    assert not np.allclose(weight.detach().numpy(), before)
    assert isinstance(opt.state[weight]["exp_avg"], strict.StrictArray)  # the state lives with the parameter
    state = opt.state_dict()["state"][0]["exp_avg"]
    assert isinstance(state, np.ndarray)  # a state dict is host NumPy, loadable anywhere
    model.cpu()
    assert all(p.device == "cpu" for p in model.parameters())


def test_ops_refuse_tensors_on_two_devices():
    with pytest.raises(RuntimeError, match="Add: Expected all tensors to be on the same device, but found at "
                                           "least two devices, cpu and strict!"):
        minidl.ones(2) + minidl.ones(2, device="strict")
    with pytest.raises(RuntimeError, match="grad: assigned grad has data located on a different device"):
        minidl.ones(2, requires_grad=True).grad = minidl.ones(2, device="strict")


def test_the_array_decides_module_and_kernels():
    cpu, device = np.zeros(2), minidl.zeros(2, device="strict")._data
    assert array_module(cpu) is np and array_module(device) is strict
    assert kernels_for(cpu) is kernel_module(minidl.backend.get_backend())
    assert kernels_for(device) is kernel_module("reference")  # the strict device: the reference kernels


def test_the_strict_device_refuses_what_cupy_refuses():
    a = minidl.tensor([[1.0, 2.0], [3.0, 4.0]], device="strict")._data
    refusals = [
        lambda: np.asarray(a),                         # implicit conversion
        lambda: np.array(a),
        lambda: np.exp(a),                             # a NumPy function on a device array
        lambda: float(a),                              # a non-scalar as a number
        lambda: a + np.ones((2, 2)),                   # a host array mixed in
        lambda: strict.add(a, np.ones((2, 2))),
        lambda: a.__setitem__(slice(None), np.ones((2, 2))),
    ]
    for refused in refusals:
        with pytest.raises(TypeError, match="strict device"):
            refused()
    assert float(a[0, 0]) == 1.0 and a.sum().item() == 10.0  # explicit conversions stay
    np.testing.assert_array_equal(a.get(), [[1.0, 2.0], [3.0, 4.0]])
    numba_kernels = pytest.importorskip("minidl.backend.numba_cpu")
    with pytest.raises(Exception):  # Numba cannot type a device array
        numba_kernels.im2col(a.reshape(1, 1, 2, 2), 1, 1, 1, 1, 0, 0, 1, 1)


def test_a_seed_draws_the_same_numbers_on_every_device():
    minidl.manual_seed(3)
    cpu = minidl.randn(5)
    minidl.cuda.manual_seed(3)  # seeds every device: one generator
    device = minidl.randn(5, device="strict")
    np.testing.assert_array_equal(cpu.numpy(), device.numpy())


def test_save_and_gradcheck_work_on_device_tensors(tmp_path):
    t = minidl.tensor([1.5, -2.0], device="strict")
    minidl.save({"t": t}, tmp_path / "t.npz")
    loaded = minidl.load(tmp_path / "t.npz")["t"]
    assert loaded.device == "cpu"  # checkpoints are read onto the host
    np.testing.assert_array_equal(loaded.numpy(), [1.5, -2.0])
    x = minidl.tensor([[0.3, -1.2], [2.0, 0.7]], dtype=minidl.float64, device="strict", requires_grad=True)
    assert minidl.gradcheck(lambda x: (x.exp() * x).sum(), (x,))


def test_without_a_gpu_cuda_says_what_is_missing():
    if minidl.cuda.is_available():
        pytest.skip("a GPU is here: the cuda device works")
    reason = minidl.cuda.why_unavailable()
    assert reason.startswith(("CuPy is not installed", "CuPy is installed but cannot use a CUDA GPU"))
    assert minidl.cuda.device_count() == 0
    minidl.cuda.synchronize()  # nothing to wait for
    for move in (lambda: minidl.ones(2).to("cuda"), lambda: minidl.ones(2).cuda(),
                 lambda: minidl.zeros(2, device="cuda"), lambda: nn.Linear(2, 2).cuda()):
        with pytest.raises(RuntimeError, match="the cuda device is not available: " + reason[:20]):
            move()
