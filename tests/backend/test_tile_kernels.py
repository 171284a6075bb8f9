"""The Numba backend's tile copies (unfold_tiles, fold_tiles) against the array code of
Lowering._unfold_tiles / _fold_tiles in minidl/ops/conv.py, their specification: bit for bit on
random shapes, kernels and dtypes, non-contiguous inputs included; the convolutions whose windows
tile the image actually use them, and match the reference backend."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl.backend import available_backends, use_backend
from minidl.functional.conv import conv2d, conv_transpose2d
from minidl.ops.conv import Lowering

pytestmark = pytest.mark.skipif("numba" not in available_backends(), reason="the Numba backend is not installed")


def _lowering(KH, KW, OH, OW):
    """The conv2d lowering of a kernel == stride convolution of a (KH*OH, KW*OW) image."""
    return Lowering((KH * OH, KW * OW), (OH, OW), (KH, KW), (KH, KW), (0, 0), (1, 1))


class _ArrayCode:
    """A kernel module without the tile copies: the lowering runs its array code."""


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 4), KH=st.integers(1, 3), KW=st.integers(1, 3),
       OH=st.integers(1, 5), OW=st.integers(1, 5), dtype=st.sampled_from([np.float32, np.float64, np.int64]),
       transposed=st.booleans(), seed=st.integers(0, 2**16))
def test_copies_equal_the_array_code_bit_for_bit(N, C, KH, KW, OH, OW, dtype, transposed, seed):
    from minidl.backend import numba_cpu
    rng = np.random.default_rng(seed)
    lowering = _lowering(KH, KW, OH, OW)
    x = (rng.standard_normal((N, C, KH * OH, KW * OW)) * 100).astype(dtype)
    if transposed:  # the same values in a non-contiguous array
        x = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    cols = numba_cpu.unfold_tiles(x, KH, KW)
    expected = lowering._unfold_tiles(_ArrayCode(), x)
    assert cols.dtype == expected.dtype and cols.shape == expected.shape
    assert cols.tobytes() == np.ascontiguousarray(expected).tobytes()
    back = numba_cpu.fold_tiles(cols, KH, KW, x.shape)
    assert back.tobytes() == np.ascontiguousarray(lowering._fold_tiles(_ArrayCode(), expected, x.shape)).tobytes()
    assert back.tobytes() == np.ascontiguousarray(x).tobytes()  # the inverse


def test_up_convolution_and_strided_conv2d_use_them_and_equal_the_reference(monkeypatch):
    """conv_transpose2d 2x2/2 (forward: fold, backward: unfold) and conv2d with kernel == stride
    (forward: unfold, dx: fold) on the Numba backend: the copies are called, and y and every
    gradient equal the reference backend's bit for bit (the same copies, the same products)."""
    from minidl.backend import numba_cpu
    calls = []

    def recorded(name):
        kernel = getattr(numba_cpu, name)

        def call(*args):
            calls.append(name)
            return kernel(*args)
        return call

    for name in ("unfold_tiles", "fold_tiles"):
        monkeypatch.setattr(numba_cpu, name, recorded(name))

    def run(backend):
        rng = np.random.default_rng(0)
        x, w_t, w_c = (rng.standard_normal(s) for s in ((2, 6, 5, 7), (6, 4, 2, 2), (3, 6, 2, 3)))
        b = rng.standard_normal(4)
        out = []
        with use_backend(backend):
            for fn, weight, bias in ((lambda x, w, b: conv_transpose2d(x, w, b, stride=2), w_t, b),
                                     (lambda x, w, b: conv2d(x[:, :, :4, :6], w, b, stride=(2, 3)), w_c, None)):
                tx, tw = minidl.tensor(x, requires_grad=True), minidl.tensor(weight, requires_grad=True)
                tb = minidl.tensor(bias, requires_grad=True) if bias is not None else None
                y = fn(tx, tw, tb)
                y.backward(minidl.tensor(rng.standard_normal(y.shape)))
                out += [y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()]
        return out

    ours = run("numba")
    assert sorted(set(calls)) == ["fold_tiles", "unfold_tiles"]
    for a, r in zip(ours, run("reference")):
        np.testing.assert_array_equal(a, r)


def test_one_by_one_windows_stay_a_view():
    """1x1 windows: the columns are x itself reshaped, no copy and no kernel."""
    from minidl.backend import numba_cpu
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    cols = _lowering(1, 1, 4, 5)._unfold_tiles(numba_cpu, x)
    assert np.shares_memory(cols, x) and cols.shape == (2, 3, 20)
