"""Bad input that used to fail deep inside NumPy or Numba now fails at once, naming the op, the
argument and what it got; and an empty batch leaves batch norm's running statistics alone."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn


def _f16(*shape):
    return minidl.tensor(np.ones(shape, np.float16))


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.conv2d(_f16(1, 1, 4, 4), _f16(1, 1, 3, 3)), TypeError,
     "conv2d: input has dtype float16; the convolution kernels take float32 and float64"),
    (lambda: F.conv_transpose2d(_f16(1, 1, 4, 4), _f16(1, 1, 3, 3)), TypeError,
     "conv_transpose2d: input has dtype float16"),
    (lambda: F.max_pool2d(_f16(1, 1, 4, 4), 2), TypeError,
     "max_pool2d: input must be a float32 or float64 tensor .* got dtype float16"),
    (lambda: F.avg_pool2d(_f16(1, 1, 4, 4), 2), TypeError, "avg_pool2d: input must be a float32 or float64"),
    (lambda: F.conv2d(minidl.ones(1, 1, 4, 4), minidl.ones(0, 1, 3, 3)), ValueError,
     r"conv2d: weight must have at least one output and one input channel .* got shape \(0, 1, 3, 3\)"),
    (lambda: minidl.ones(2, 3, 4) @ minidl.ones(5, 4, 2), ValueError,
     r"matmul: the batch dimensions \(2,\) of \(2, 3, 4\) and \(5,\) of \(5, 4, 2\) cannot be broadcast"),
    (lambda: F.interpolate(minidl.ones(1, 1, 4, 4), scale_factor=float("inf")), ValueError,
     "interpolate: scale_factor must be a positive finite number, got inf"),
    (lambda: nn.Linear(-1, 3), ValueError, "Linear: in_features must be an int >= 0, got -1"),
    (lambda: nn.Conv2d(2, -3, 3), ValueError, "Conv2d: out_channels must be a positive int, got -3"),
])
def test_bad_input_is_named_before_any_work(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_an_empty_batch_leaves_batch_norm_statistics_alone(torch):
    ours, theirs = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    x = minidl.ones(0, 3, 4, 4, requires_grad=True)
    y = ours(x)
    theirs(torch.ones(0, 3, 4, 4))
    assert y.shape == (0, 3, 4, 4)
    np.testing.assert_array_equal(ours.running_mean.numpy(), theirs.running_mean.numpy())  # zeros, not NaN
    np.testing.assert_array_equal(ours.running_var.numpy(), theirs.running_var.numpy())
    y.sum().backward()
    assert x.grad.shape == (0, 3, 4, 4) and not np.isnan(ours.weight.grad.numpy()).any()


def test_an_empty_batch_statistics_without_torch():
    bn = nn.BatchNorm2d(2)
    bn(minidl.ones(0, 2, 3, 3))
    np.testing.assert_array_equal(bn.running_mean.numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(bn.running_var.numpy(), [1.0, 1.0])
