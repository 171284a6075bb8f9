"""F.pixel_shuffle / F.pixel_unshuffle (minidl/functional/pixel_shuffle.py) against PyTorch,
by the index formula, and by finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F
from helpers import compare_with_torch, gradcheck_with_random_dy

SETTINGS = settings(max_examples=25, deadline=None)


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@SETTINGS
@given(lead=st.lists(st.integers(1, 3), max_size=2), c=st.integers(1, 3), r=st.integers(1, 3),
       h=st.integers(1, 4), w=st.integers(1, 4))
def test_pixel_shuffle_shapes_and_values_match_torch(torch, lead, c, r, h, w):
    shape = (*lead, c * r * r, h, w)
    y = compare_with_torch(torch, lambda x: F.pixel_shuffle(x, r),
                           lambda x: torch.nn.functional.pixel_shuffle(x, r), [_randn(shape)])
    assert y.shape == (*lead, c, h * r, w * r)


@SETTINGS
@given(lead=st.lists(st.integers(1, 3), max_size=2), c=st.integers(1, 3), r=st.integers(1, 3),
       h=st.integers(1, 3), w=st.integers(1, 3))
def test_pixel_unshuffle_shapes_and_values_match_torch(torch, lead, c, r, h, w):
    shape = (*lead, c, h * r, w * r)
    y = compare_with_torch(torch, lambda x: F.pixel_unshuffle(x, r),
                           lambda x: torch.nn.functional.pixel_unshuffle(x, r), [_randn(shape)])
    assert y.shape == (*lead, c * r * r, h, w)


def test_pixel_shuffle_follows_the_index_formula():
    r, C, H, W = 3, 2, 2, 3
    x = np.arange(2 * C * r * r * H * W, dtype=np.float64).reshape(2, C * r * r, H, W)
    y = F.pixel_shuffle(minidl.tensor(x), r).numpy()
    for c in range(C):
        for i in range(r):
            for j in range(r):
                np.testing.assert_array_equal(y[:, c, i::r, j::r], x[:, c * r * r + i * r + j])


def test_empty_batches_keep_the_shape_rule():
    # (PyTorch 2.13 returns pixel_unshuffle's input unchanged for an empty batch, and its
    # pixel_shuffle backward fails there: minidl follows the shape rule.)
    x = minidl.zeros(0, 8, 2, 3, requires_grad=True)
    y = F.pixel_shuffle(x, 2)
    assert y.shape == (0, 2, 4, 6)
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert F.pixel_unshuffle(minidl.zeros(0, 1, 2, 4), 2).shape == (0, 4, 1, 2)


def test_unshuffle_inverts_shuffle():
    x = minidl.tensor(_randn((2, 12, 3, 5)))
    np.testing.assert_array_equal(F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2).numpy(), x.numpy())


@pytest.mark.parametrize("fn,shape,r", [(F.pixel_shuffle, (3, 9, 3, 5), 3), (F.pixel_unshuffle, (3, 5, 6, 4), 2),
                                        (F.pixel_shuffle, (2, 3, 4, 1, 1), 2)])
def test_gradcheck(fn, shape, r):
    assert gradcheck_with_random_dy(lambda x: fn(x, r), [_randn(shape, 1)])


def test_errors(torch):
    cases = [
        (F.pixel_shuffle, (4, 4), 2, RuntimeError,
         r"pixel_shuffle expects input to have at least 3 dimensions, but got input with 2 dimension\(s\)"),
        (F.pixel_shuffle, (1, 4, 2, 2), 0, RuntimeError, "pixel_shuffle expects a positive upscale_factor, but got 0"),
        (F.pixel_shuffle, (1, 6, 2, 2), 2, RuntimeError,
         r"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of upscale_factor, "
         r"but input.size\(-3\)=6 is not divisible by 4"),
        (F.pixel_shuffle, (1, 4, 2, 2), 2.0, TypeError, r"argument 'upscale_factor'.* must be int, not float"),
        (F.pixel_unshuffle, (4, 4), 2, RuntimeError, "pixel_unshuffle expects input to have at least 3 dimensions"),
        (F.pixel_unshuffle, (1, 1, 4, 4), -1, RuntimeError,
         "pixel_unshuffle expects a positive downscale_factor, but got -1"),
        (F.pixel_unshuffle, (1, 1, 3, 4), 2, RuntimeError,
         r"pixel_unshuffle expects height to be divisible by downscale_factor, but input.size\(-2\)=3 is not "
         "divisible by 2"),
        (F.pixel_unshuffle, (1, 1, 4, 3), 2, RuntimeError,
         r"pixel_unshuffle expects width to be divisible by downscale_factor, but input.size\(-1\)=3 is not "
         "divisible by 2"),
    ]
    for fn, shape, r, error, message in cases:
        with pytest.raises(error, match=message):
            fn(minidl.zeros(*shape), r)
        with pytest.raises(error, match=message.split(", but")[0]):  # PyTorch: the same type and message
            getattr(torch.nn.functional, fn.__name__)(torch.zeros(*shape), r)
    with pytest.raises(TypeError, match="pixel_shuffle: input must be a minidl Tensor"):
        F.pixel_shuffle(np.zeros((1, 4, 2, 2)), 2)
