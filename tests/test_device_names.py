"""PyTorch's device, layout and legacy names that training scripts use: accelerator, memory
formats, cuda.amp, OutOfMemoryError, autograd.Variable."""
import warnings

import numpy as np
import pytest

import minidl
from minidl.autograd import Variable


def test_variable_is_a_new_leaf_on_the_same_memory(torch):
    for requires_grad in (False, True):
        t, t_ref = minidl.ones(3), torch.ones(3)
        v, v_ref = Variable(t, requires_grad=requires_grad), torch.autograd.Variable(t_ref, requires_grad=requires_grad)
        assert (v is t) == (v_ref is t_ref)
        assert v.requires_grad == v_ref.requires_grad and t.requires_grad == t_ref.requires_grad
        assert v.is_leaf and v_ref.is_leaf
        v.data.add_(1)
        assert np.array_equal(t.numpy(), np.full(3, 2.0))  # same memory
    assert isinstance(minidl.zeros(1), Variable) == isinstance(torch.zeros(1), torch.autograd.Variable)
    with pytest.raises(TypeError, match="Variable data has to be a tensor, but got int"):
        Variable(3)
    with pytest.raises(TypeError, match="Variable data has to be a tensor, but got int"):
        torch.autograd.Variable(3)


def test_variable_of_a_result_is_cut_from_its_graph():
    x = minidl.ones(2, requires_grad=True)
    y = Variable(x * 2, requires_grad=True)
    (y * y).sum().backward()
    assert x.grad is None and np.array_equal(y.grad.numpy(), [4.0, 4.0])


def test_accelerator_answers_as_pytorch_on_a_machine_without_gpu(torch):
    assert minidl.accelerator.is_available() == minidl.cuda.is_available()
    if not minidl.cuda.is_available():
        assert minidl.accelerator.current_accelerator() is None
        assert minidl.accelerator.device_count() == 0
    else:
        assert minidl.accelerator.current_accelerator() == minidl.device("cuda")
    if not torch.accelerator.is_available():
        assert torch.accelerator.current_accelerator() is None  # the behaviour mirrored above


def test_memory_formats_are_accepted_and_checked_as_pytorch(torch):
    x, x_ref = minidl.ones(1, 2, 3, 3), torch.ones(1, 2, 3, 3)
    for fmt, fmt_ref in ((minidl.channels_last, torch.channels_last),
                         (minidl.contiguous_format, torch.contiguous_format),
                         (minidl.preserve_format, torch.preserve_format)):
        y = x.to(device="cpu", dtype=minidl.float32, memory_format=fmt)
        assert y.shape == tuple(x_ref.to(memory_format=fmt_ref).shape)
    for shape in ((2, 3), (1, 2, 3), (1, 1, 1, 1, 1)):
        with pytest.raises(RuntimeError, match="required rank 4 tensor to use channels_last format"):
            torch.ones(shape).to(memory_format=torch.channels_last)
        with pytest.raises(RuntimeError, match="required rank 4 tensor to use channels_last format"):
            minidl.ones(shape).to(memory_format=minidl.channels_last)
    with pytest.raises(TypeError, match="memory_format"):
        x.to(memory_format="channels_last")
    assert repr(minidl.channels_last) == "minidl.channels_last"


def test_cuda_names_scripts_use():
    assert issubclass(minidl.cuda.OutOfMemoryError, RuntimeError)
    assert minidl.OutOfMemoryError is minidl.cuda.OutOfMemoryError
    minidl.cuda.empty_cache()  # nothing to free without a GPU; must not fail
    from minidl.cuda.amp import GradScaler, autocast

    with pytest.warns(FutureWarning, match="minidl.amp.GradScaler"):
        scaler = GradScaler(enabled=False)
    w = minidl.nn.Parameter(minidl.ones(2))
    opt = minidl.optim.SGD([w], lr=0.5)
    (scaler.scale((w * w).sum())).backward()
    scaler.step(opt)
    scaler.update()
    assert np.array_equal(w.detach().numpy(), [0.0, 0.0])  # one plain SGD step: 1 - 0.5 * 2
    with pytest.warns(FutureWarning, match="minidl.amp.autocast"):
        ctx = autocast(enabled=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ctx:  # disabled: no "does nothing" warning
            pass
