"""pad (all modes) and center_crop (minidl/ops/pad.py) against PyTorch and by hand."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minidl
from helpers import compare_with_torch, gradcheck_with_random_dy
from minidl.functional.shape import center_crop, pad
from minidl.ops.pad import middle, source_index


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------------------- constant
@SETTINGS
@given(ndim=st.integers(1, 4), data=st.data())
def test_constant_pad_matches_torch(torch, backend, ndim, data):
    TF = torch.nn.functional
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    k = data.draw(st.integers(1, ndim))
    widths = data.draw(st.lists(st.integers(-2, 3), min_size=2 * k, max_size=2 * k))
    for i in range(k):  # keep every padded size >= 0 (a negative width crops)
        n = shape[ndim - 1 - i]
        assume(widths[2 * i] + n + widths[2 * i + 1] >= 0 and -widths[2 * i] < n and -widths[2 * i + 1] < n)
    value = data.draw(st.sampled_from([None, 0.0, -1.5, 2.0]))
    kwargs = {} if value is None else {"value": value}
    compare_with_torch(torch, lambda x: pad(x, tuple(widths), **kwargs),
                       lambda x: TF.pad(x, tuple(widths), **kwargs), [_randn(shape)])


def test_constant_pad_value_dtype_and_crop(torch, backend):
    TF = torch.nn.functional
    x = minidl.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    y = pad(x, (1, -1, 0, 1), value=7)
    assert y.dtype == minidl.float32
    np.testing.assert_array_equal(y.numpy(), [[7, 0, 1], [7, 3, 4], [7, 7, 7]])
    ints = pad(minidl.tensor([[1, 2]]), (1, 1), value=2.7)  # the value takes the tensor's dtype, as in torch
    np.testing.assert_array_equal(ints.numpy(), TF.pad(torch.tensor([[1, 2]]), (1, 1), value=2.7).numpy())


def test_constant_pad_gradient_crops_dy(backend):
    x = minidl.tensor(_randn((2, 3)), requires_grad=True)
    dy = _randn((3, 6), 1)
    pad(x, (1, 2, 0, 1)).backward(minidl.tensor(dy))
    np.testing.assert_array_equal(x.grad.numpy(), dy[0:2, 1:4])


# ----------------------------------------------------------------------------- reflect, replicate, circular
@SETTINGS
@given(mode=st.sampled_from(["reflect", "replicate", "circular"]), k=st.integers(1, 3), data=st.data())
def test_copy_pads_match_torch(torch, backend, mode, k, data):
    TF = torch.nn.functional
    ndim = data.draw(st.integers(k + 1, k + 2))
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=ndim - k, max_size=ndim - k))) + \
        tuple(data.draw(st.lists(st.integers(2, 5), min_size=k, max_size=k)))
    widths = []
    for i in range(k):  # last dimension first
        n = shape[ndim - 1 - i]
        limit = n - 1 if mode == "reflect" else n if mode == "circular" else 4
        widths += data.draw(st.lists(st.integers(0, limit), min_size=2, max_size=2))
    compare_with_torch(torch, lambda x: pad(x, tuple(widths), mode=mode),
                       lambda x: TF.pad(x, tuple(widths), mode=mode), [_randn(shape)])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("widths", [(-1, 2), (2, -1), (-1, -1, 1, 0), (1, -2, -1, 2)])
def test_copy_pads_with_negative_widths_match_torch(torch, backend, mode, widths):
    TF = torch.nn.functional
    compare_with_torch(torch, lambda x: pad(x, widths, mode=mode), lambda x: TF.pad(x, widths, mode=mode),
                       [_randn((2, 4, 5))])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_copy_pads_gradcheck(backend, mode):
    assert gradcheck_with_random_dy(lambda x: pad(x, (2, 1, 1, 2), mode=mode), [_randn((1, 2, 3, 4))])
    assert gradcheck_with_random_dy(lambda x: pad(x, (1, 2), mode=mode), [_randn((2, 3))])
    assert gradcheck_with_random_dy(lambda x: pad(x, (1, 0, 0, 1, 1, 1), mode=mode), [_randn((1, 3, 3, 3))])


def test_reflect_gradient_is_the_docstring_example(backend):
    # n = 3, before = after = 1: y = (x1, x0, x1, x2, x1), so dx0 = dy1, dx1 = dy0 + dy2 + dy4, dx2 = dy3
    x = minidl.tensor(np.array([[10.0, 20.0, 30.0]]), requires_grad=True)
    y = pad(x, (1, 1), mode="reflect")
    np.testing.assert_array_equal(y.detach().numpy(), [[20, 10, 20, 30, 20]])
    dy = np.array([[1.0, 10.0, 100.0, 1000.0, 10000.0]])
    y.backward(minidl.tensor(dy))
    np.testing.assert_array_equal(x.grad.numpy(), [[10, 1 + 100 + 10000, 1000]])


@pytest.mark.parametrize("mode, expected", [("reflect", [2, 1, 0, 1, 2, 3, 2, 1]),
                                            ("replicate", [0, 0, 0, 1, 2, 3, 3, 3]),
                                            ("circular", [2, 3, 0, 1, 2, 3, 0, 1])])
def test_source_index_matches_the_docstring(mode, expected):
    np.testing.assert_array_equal(source_index(mode, 4, 2, 2), expected)
    lo, start, size = middle(4, 2, 2)
    np.testing.assert_array_equal(source_index(mode, 4, 2, 2)[lo:lo + size], np.arange(start, start + size))


def test_pad_errors(backend):
    x = minidl.zeros(2, 3, 4, 5)
    with pytest.raises(RuntimeError, match=r"pad: Padding length must be divisible by 2: pad must have an even length"):
        pad(x, (1,))
    with pytest.raises(TypeError, match=r"pad: pad must be a tuple of ints, got 1"):
        pad(x, 1)
    with pytest.raises(RuntimeError, match=r"pad: pad \(1, 1, 1, 1, 1, 1, 1, 1, 1, 1\) pads 5 dimensions but the "
                                           r"input has only 4 \(shape \(2, 3, 4, 5\)\)"):
        pad(x, (1,) * 10)
    with pytest.raises(NotImplementedError, match=r"pad: Unrecognised padding mode 'foo'"):
        pad(x, (1, 1), mode="foo")
    with pytest.raises(RuntimeError, match=r"pad: Padding mode 'reflect' doesn't take in value argument"):
        pad(x, (1, 1, 1, 1), mode="reflect", value=1)
    assert pad(x, (1, 1, 1, 1), mode="reflect", value=0).shape == (2, 3, 6, 7)  # as PyTorch
    with pytest.raises(NotImplementedError, match=r"pad: mode 'replicate' with padding of length 2 is not "
                                                   r"supported for 4-D input \(shape \(2, 3, 4, 5\)\); "
                                                   r"supported: length 2 for 2-D or 3-D"):
        pad(x, (1, 1), mode="replicate")
    with pytest.raises(RuntimeError, match=r"pad: reflect padding \(5, 1\) of dimension 3 \(input shape "
                                           r"\(2, 3, 4, 5\)\): Padding size should be less than the corresponding "
                                           r"input dimension: each padding must be less than the size 5"):
        pad(x, (5, 1, 0, 0), mode="reflect")
    with pytest.raises(RuntimeError, match=r"pad: circular padding \(6, 0\) of dimension 3 .*: Padding value causes "
                                           r"wrapping around more than once"):
        pad(x, (6, 0, 0, 0), mode="circular")
    with pytest.raises(ValueError, match=r"pad: replicate padding \(-5, 1\) of dimension 3 .* leaves no input"):
        pad(x, (-5, 1, 0, 0), mode="replicate")
    with pytest.raises(RuntimeError, match=r"pad: padding \(-3, -3\) of dimension 3 would leave -1 entries"):
        pad(x, (-3, -3))
    with pytest.raises(TypeError, match=r"pad: input must be a minidl Tensor"):
        pad(np.zeros((2, 2)), (1, 1))


@pytest.mark.parametrize("args", [
    dict(pad=(1,)), dict(pad=(1,) * 10), dict(pad=(1, 1), mode="foo"),
    dict(pad=(1, 1, 1, 1), mode="reflect", value=1.0), dict(pad=(1, 1), mode="replicate"),
    dict(pad=(5, 1, 0, 0), mode="reflect"), dict(pad=(6, 0, 0, 0), mode="circular"), dict(pad=(-3, -3)),
])
def test_pad_errors_have_pytorchs_types(torch, args):
    x = np.zeros((2, 3, 4, 5))
    with pytest.raises(Exception) as theirs:
        torch.nn.functional.pad(torch.tensor(x), **args)
    with pytest.raises(theirs.type):
        pad(minidl.tensor(x), **args)


# ----------------------------------------------------------------------------- center_crop
@pytest.mark.parametrize("size, window", [((2, 3), (slice(1, 3), slice(1, 4))),   # H-h = 3 (odd), W-w = 3 (odd)
                                          (3, (slice(1, 4), slice(1, 4))),        # 5-3 = 2 (even), 6-3 = 3
                                          ((5, 6), (slice(0, 5), slice(0, 6))),   # nothing to crop
                                          ((0, 2), (slice(2, 2), slice(2, 4)))])
def test_center_crop_is_the_central_window(torch, backend, size, window):
    x = _randn((2, 1, 5, 6))
    got = center_crop(minidl.tensor(x), size)
    np.testing.assert_array_equal(got.numpy(), x[(Ellipsis,) + window])
    compare_with_torch(torch, lambda t: center_crop(t, size), lambda t: t[(Ellipsis,) + window], [x])


def test_center_crop_offsets_floor_half_the_difference(backend):
    x = np.arange(7 * 8, dtype=np.float64).reshape(7, 8)
    y = center_crop(minidl.tensor(x), (4, 4))  # top = (7 - 4) // 2 = 1, left = (8 - 4) // 2 = 2
    np.testing.assert_array_equal(y.numpy(), x[1:5, 2:6])


def test_center_crop_gradient_puts_dy_back_into_zeros(backend):
    x = minidl.tensor(_randn((1, 2, 6, 5)), requires_grad=True)
    dy = _randn((1, 2, 3, 2), 1)
    center_crop(x, (3, 2)).backward(minidl.tensor(dy))
    expected = np.zeros((1, 2, 6, 5))
    expected[..., 1:4, 1:3] = dy  # top = (6-3)//2 = 1, left = (5-2)//2 = 1
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    assert gradcheck_with_random_dy(lambda t: center_crop(t, (3, 4)), [_randn((2, 5, 7))])


def test_center_crop_errors(backend):
    x = minidl.zeros(1, 1, 4, 5)
    with pytest.raises(ValueError, match=r"center_crop: size \(5, 5\) does not fit in the last two dimensions "
                                         r"\(4, 5\) of the input of shape \(1, 1, 4, 5\)"):
        center_crop(x, 5)
    with pytest.raises(TypeError, match=r"center_crop: size must be an int or a pair of ints"):
        center_crop(x, (1, 2, 3))
    with pytest.raises(ValueError, match=r"center_crop: input must have at least 2 dimensions"):
        center_crop(minidl.zeros(4), 2)


def test_unet_crop_and_concat_gradient(torch, backend):
    """The skip connection of U-Net: crop the encoder map, concatenate with the decoder map."""
    from minidl.functional.shape import cat
    skip, up = _randn((1, 2, 8, 8)), _randn((1, 3, 4, 4), 1)

    def ours(s, u):
        return cat([center_crop(s, u.shape[-2:]), u], dim=1)

    def theirs(s, u):
        return torch.cat([s[..., 2:6, 2:6], u], dim=1)

    compare_with_torch(torch, ours, theirs, [skip, up])
