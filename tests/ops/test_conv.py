"""Convolution (minidl/ops/conv.py, functional/conv.py, nn/conv.py) against PyTorch and loops.

float64 everywhere; forward and every gradient (random upstream gradient) within 1e-10 of
PyTorch; naive loops written from the docstrings' index formulas; the blocked and chunked
(memory bounded) paths equal the one-block one; every error message.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from helpers import assert_close, compare_with_torch, gradcheck_with_random_dy
from minidl.functional.conv import conv2d, conv_transpose2d
from minidl.nn.conv import Conv2d, ConvTranspose2d
from minidl.backend import conv_algorithm
from minidl.ops import conv as conv_ops
from minidl.ops import conv_algorithms
from minidl.ops.conv_rotated import Conv2dRotatedKernel


# PyTorch warns that it copies the input for 'same' with an even kernel; so do we (Lowering)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _t(a, requires_grad=False):
    return minidl.tensor(a, dtype=minidl.float64, requires_grad=requires_grad)


@pytest.fixture
def column_limit():
    """Set the column-buffer limit inside a test; the default is restored afterwards."""
    previous = conv_ops.get_column_buffer_limit()
    yield conv_ops.set_column_buffer_limit
    conv_ops.set_column_buffer_limit(previous)


def _compare(torch, fn_ours, fn_torch, x, weight, bias, seed=0):
    arrays = [x, weight] + ([bias] if bias is not None else [])
    return compare_with_torch(torch, fn_ours, fn_torch, arrays, rtol=1e-10, seed=seed)


# ---- strategies ------------------------------------------------------------------------------

@st.composite
def conv2d_configs(draw):
    G = draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    DH, DW = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kinds = ["int", "pair", "valid"] + (["same"] if stride == (1, 1) else [])
    kind = draw(st.sampled_from(kinds))
    padding = {"int": draw(st.integers(0, 2)), "pair": (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
               "valid": "valid", "same": "same"}[kind]
    PH, PW = (padding, padding) if kind == "int" else padding if kind == "pair" else (0, 0)
    H = draw(st.integers(max(1, DH * (KH - 1) + 1 - 2 * PH), DH * (KH - 1) + 7))
    W = draw(st.integers(max(1, DW * (KW - 1) + 1 - 2 * PW), DW * (KW - 1) + 7))
    return dict(
        x_shape=(draw(st.integers(1, 3)), G * draw(st.integers(1, 2)), H, W),
        weight_shape=(G * draw(st.integers(1, 2)), None, KH, KW),  # C/G filled in below
        bias=draw(st.booleans()), stride=stride, padding=padding, dilation=(DH, DW), groups=G,
    )


@st.composite
def conv_transpose2d_configs(draw):
    G = draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    DH, DW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    OPH = draw(st.integers(0, max(SH, DH) - 1))  # output_padding < stride or < dilation
    OPW = draw(st.integers(0, max(SW, DW) - 1))
    H, W = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    # padding small enough that the output is not empty
    max_ph = max(0, ((H - 1) * SH + DH * (KH - 1) + OPH) // 2)
    max_pw = max(0, ((W - 1) * SW + DW * (KW - 1) + OPW) // 2)
    return dict(
        x_shape=(draw(st.integers(1, 3)), G * draw(st.integers(1, 2)), H, W),
        F_per_group=draw(st.integers(1, 2)), kernel=(KH, KW), bias=draw(st.booleans()),
        stride=(SH, SW), padding=(draw(st.integers(0, min(2, max_ph))), draw(st.integers(0, min(2, max_pw)))),
        output_padding=(OPH, OPW), dilation=(DH, DW), groups=G,
    )


# ---- F.conv2d --------------------------------------------------------------------------------

@SETTINGS
@given(cfg=conv2d_configs(), seed=st.integers(0, 2**16))
def test_conv2d_matches_torch(torch, backend, cfg, seed):
    TF = torch.nn.functional
    N, C, H, W = cfg["x_shape"]
    F, _, KH, KW = cfg["weight_shape"]
    G = cfg["groups"]
    x, weight = _randn((N, C, H, W), seed), _randn((F, C // G, KH, KW), seed + 1)
    bias = _randn((F,), seed + 2) if cfg["bias"] else None
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=G)
    _compare(torch, lambda *a: conv2d(*a, **kw), lambda *a: TF.conv2d(*a, **kw), x, weight, bias, seed)


@SETTINGS
@given(cfg=conv2d_configs(), seed=st.integers(0, 2**16))
def test_conv2d_one_output_row_at_a_time_matches_torch(torch, backend, column_limit, cfg, seed):
    """A 1-byte column limit: every block is one output row of one sample (conv_blocks), so
    the bands' col2im overlap in dx and must add up; canvas, stride, dilation, groups alike."""
    column_limit(1)
    test_conv2d_matches_torch.hypothesis.inner_test(torch, backend, cfg, seed)


@pytest.mark.parametrize("kw", [
    dict(padding=1),  # the kernels pad the whole image themselves
    dict(padding="same"),  # kernel width 2: uneven padding, through the canvas
    dict(stride=2, padding=(1, 2), groups=2),
])
def test_conv2d_one_sample_per_block_matches_torch(torch, backend, column_limit, kw):
    """A column limit of one sample's columns: blocks of whole samples, whose dx come straight from
    col2im (or through the canvas, for uneven padding) and are joined."""
    TF = torch.nn.functional
    x, weight, bias = _randn((3, 4, 7, 6)), _randn((6, 4 // kw.get("groups", 1), 3, 2), 1), _randn((6,), 2)
    _, _, OH, OW = conv2d(_t(x), _t(weight), **kw).shape
    K = 4 * 3 * 2  # C * KH * KW: a sample's column length (every group's columns together)
    column_limit(K * OH * OW * 8)  # one sample's columns (K, OH*OW) in float64
    assert len(conv_ops.conv_blocks(3, OH, OW, K * 8)) == 3
    with conv_algorithm("im2col"):
        _compare(torch, lambda *a: conv2d(*a, **kw), lambda *a: TF.conv2d(*a, **kw), x, weight, bias)


@pytest.mark.parametrize("kw", [
    dict(padding="same"),  # kernel (4, 2): even, the extra row/column goes bottom/right
    dict(padding="same", dilation=(1, 3)),  # dilated width 4: odd total padding 3
    dict(padding="same", dilation=2),  # even totals: symmetric
    dict(stride=(2, 3), padding=(2, 1), dilation=(2, 1), groups=2),
    dict(stride=1, padding=3),  # padding wider than the kernel: border outputs see only zeros
])
def test_conv2d_matches_torch_on_chosen_cases(torch, backend, kw):
    TF = torch.nn.functional
    x, weight, bias = _randn((2, 4, 7, 6)), _randn((6, 4 // kw.get("groups", 1), 4, 2), 1), _randn((6,), 2)
    _compare(torch, lambda *a: conv2d(*a, **kw), lambda *a: TF.conv2d(*a, **kw), x, weight, bias)


def naive_conv2d(x, weight, bias, S, P, D, G):
    """The index formula with seven loops (plus the group offset):
    y[n,f,i,j] = bias[f] + sum_{c,p,q} weight[f,c,p,q] * xpad[n, g*C/G + c, S*i + D*p, S*j + D*q]."""
    N, C, H, W = x.shape
    F, Cg, KH, KW = weight.shape
    xpad = np.zeros((N, C, H + 2 * P[0], W + 2 * P[1]))
    xpad[:, :, P[0]:P[0] + H, P[1]:P[1] + W] = x
    OH = (H + 2 * P[0] - D[0] * (KH - 1) - 1) // S[0] + 1
    OW = (W + 2 * P[1] - D[1] * (KW - 1) - 1) // S[1] + 1
    y = np.zeros((N, F, OH, OW))
    for n in range(N):
        for f in range(F):
            g = f // (F // G)  # the group of filter f
            for i in range(OH):
                for j in range(OW):
                    total = bias[f]
                    for c in range(Cg):
                        for p in range(KH):
                            for q in range(KW):
                                total += weight[f, c, p, q] * xpad[n, g * Cg + c, S[0] * i + D[0] * p,
                                                                   S[1] * j + D[1] * q]
                    y[n, f, i, j] = total
    return y


def test_conv2d_equals_the_seven_loop_formula(backend):
    x, weight, bias = _randn((2, 4, 6, 5)), _randn((4, 2, 3, 2), 1), _randn((4,), 2)
    for S, P, D, G in [((1, 1), (0, 0), (1, 1), 1), ((2, 1), (1, 2), (1, 2), 2)]:
        w = weight if G == 2 else _randn((4, 4, 3, 2), 3)
        y = conv2d(_t(x), _t(w), _t(bias), stride=S, padding=P, dilation=D, groups=G)
        np.testing.assert_allclose(y.data, naive_conv2d(x, w, bias, S, P, D, G), rtol=1e-12, atol=1e-12)


def naive_conv_transpose2d(x, weight, bias, S, P, OP, D, G):
    """Each input pixel scatters x[n,c,i,j] * weight[c,f,:,:] onto (S*i + D*p - P, S*j + D*q - P)."""
    N, C, H, W = x.shape
    _, Fg, KH, KW = weight.shape
    OH = (H - 1) * S[0] - 2 * P[0] + D[0] * (KH - 1) + OP[0] + 1
    OW = (W - 1) * S[1] - 2 * P[1] + D[1] * (KW - 1) + OP[1] + 1
    y = np.zeros((N, Fg * G, OH, OW)) + bias[:, None, None]
    for n in range(N):
        for c in range(C):
            g = c // (C // G)
            for i in range(H):
                for j in range(W):
                    for f in range(Fg):
                        for p in range(KH):
                            for q in range(KW):
                                h, w = S[0] * i + D[0] * p - P[0], S[1] * j + D[1] * q - P[1]
                                if 0 <= h < OH and 0 <= w < OW:
                                    y[n, g * Fg + f, h, w] += x[n, c, i, j] * weight[c, f, p, q]
    return y


def test_conv_transpose2d_equals_the_scatter_formula(backend):
    x, weight, bias = _randn((2, 4, 3, 4)), _randn((4, 2, 3, 2), 1), _randn((4,), 2)
    for S, P, OP, D, G in [((1, 1), (0, 0), (0, 0), (1, 1), 1), ((2, 3), (1, 1), (1, 2), (1, 2), 2),
                           ((1, 1), (1, 0), (2, 0), (3, 1), 2)]:  # output_padding >= stride
        y = conv_transpose2d(_t(x), _t(weight), _t(bias[:2 * G]), stride=S, padding=P,
                             output_padding=OP, groups=G, dilation=D)
        np.testing.assert_allclose(y.data, naive_conv_transpose2d(x, weight, bias[:2 * G], S, P, OP, D, G),
                                   rtol=1e-12, atol=1e-12)


def test_conv_transpose2d_is_the_input_gradient_of_conv2d(backend):
    """<conv2d(z, w), x> == <z, conv_transpose2d(x, w)>: the two are adjoint in their inputs."""
    w = _randn((4, 3, 3, 2))
    z = _randn((2, 3, 9, 8), 1)  # conv2d input
    kw = dict(stride=2, padding=1, dilation=(1, 2))
    y = conv2d(_t(z), _t(w), **kw)  # (2, 4, 5, 3): 9 = (5-1)*2 - 2 + 2 + 0 + 1 -> output_padding 0
    x = _randn(y.shape, 2)
    back = conv_transpose2d(_t(x), _t(w), output_padding=(0, 1), **kw)
    assert back.shape == z.shape
    assert abs(np.vdot(y.data, x) - np.vdot(z, back.data)) < 1e-10


@SETTINGS
@given(cfg=conv_transpose2d_configs(), seed=st.integers(0, 2**16))
def test_conv_transpose2d_matches_torch(torch, backend, cfg, seed):
    TF = torch.nn.functional
    N, C, H, W = cfg["x_shape"]
    G, (KH, KW) = cfg["groups"], cfg["kernel"]
    F = cfg["F_per_group"] * G
    x, weight = _randn((N, C, H, W), seed), _randn((C, F // G, KH, KW), seed + 1)
    bias = _randn((F,), seed + 2) if cfg["bias"] else None
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], output_padding=cfg["output_padding"],
              groups=G, dilation=cfg["dilation"])
    _compare(torch, lambda *a: conv_transpose2d(*a, **kw), lambda *a: TF.conv_transpose2d(*a, **kw),
             x, weight, bias, seed)


def test_unbatched_input_like_torch(torch, backend):
    TF = torch.nn.functional
    x, weight, bias = _randn((3, 6, 5)), _randn((4, 3, 3, 2), 1), _randn((4,), 2)
    y = _compare(torch, lambda *a: conv2d(*a, padding=1), lambda *a: TF.conv2d(*a, padding=1), x, weight, bias)
    assert y.shape == (4, 6, 6)
    wt = _randn((3, 2, 3, 2), 3)
    y = _compare(torch, lambda *a: conv_transpose2d(*a, stride=2), lambda *a: TF.conv_transpose2d(*a, stride=2),
                 x, wt, bias[:2])
    assert y.shape == (2, 13, 10)


def test_float32_stays_float32(backend):
    x = minidl.tensor(_randn((1, 2, 5, 5)).astype(np.float32), requires_grad=True)
    w = minidl.tensor(_randn((3, 2, 3, 3), 1).astype(np.float32), requires_grad=True)
    y = conv2d(x, w, padding=1)
    assert y.dtype == minidl.float32
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == minidl.float32
    assert conv_transpose2d(x, _t(_randn((2, 3, 3, 3))).to(minidl.float32)).dtype == minidl.float32


@pytest.mark.parametrize("fn, arrays", [
    (lambda x, w, b: conv2d(x, w, b, stride=2, padding=1), [(2, 3, 7, 6), (4, 3, 3, 3), (4,)]),
    (lambda x, w, b: conv2d(x, w, b, padding=(1, 0), dilation=(1, 2)), [(1, 2, 5, 7), (3, 2, 2, 3), (3,)]),
    (lambda x, w, b: conv2d(x, w, b, stride=(1, 2), groups=2), [(2, 4, 5, 6), (6, 2, 3, 2), (6,)]),
    (lambda x, w, b: conv2d(x, w, b, padding="same"), [(1, 2, 4, 5), (2, 2, 2, 4), (2,)]),
    # stride 1 with groups and dilation: backward by the rotated kernel (Conv2d docstring)
    (lambda x, w, b: conv2d(x, w, b, padding=(2, 1), dilation=(2, 1), groups=3),
     [(2, 6, 5, 4), (3, 2, 2, 3), (3,)]),
    (lambda x, w, b: conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
     [(2, 3, 3, 4), (3, 2, 3, 3), (2,)]),
    (lambda x, w, b: conv_transpose2d(x, w, b, stride=(2, 1), groups=2, dilation=(1, 2)),
     [(1, 4, 3, 3), (4, 1, 2, 3), (2,)]),
])
def test_gradcheck(backend, fn, arrays):
    arrays = [_randn(shape, seed) for seed, shape in enumerate(arrays)]
    assert gradcheck_with_random_dy(fn, arrays)


# few pixels and many channels: the weight gradient's samples go side by side (sum_over_samples)
FEW_PIXELS = [
    # OH x OW = 1 x 2 pixels per sample, 7 filters x 30 window values: 2 * 37 < 7 * 30
    ("conv2d", dict(stride=2), [(3, 5, 4, 5), (7, 5, 3, 2), (7,)]),
    ("conv2d", dict(stride=(3, 2), groups=2), [(2, 6, 3, 4), (8, 3, 3, 2), (8,)]),
    # 1 x 2 input pixels per sample, 6 input channels x 24 window values: 2 * 30 < 6 * 24
    ("conv_transpose2d", dict(stride=2), [(3, 6, 1, 2), (6, 4, 3, 2), (4,)]),
]


@pytest.mark.parametrize("name, kw, shapes", FEW_PIXELS)
def test_few_pixels_many_channels_gradcheck(backend, monkeypatch, name, kw, shapes):
    """The weight gradient summed over the samples side by side (one product over n*P pixels):
    taken in these cases (a spy on the products' shapes says so), by a float64 gradient check."""
    arrays = [_randn(shape, seed) for seed, shape in enumerate(shapes)]
    ours = {"conv2d": conv2d, "conv_transpose2d": conv_transpose2d}[name]
    side = []
    real = conv_ops.samples_side_by_side

    def spy(*sizes):
        side.append(real(*sizes))
        return side[-1]
    monkeypatch.setattr(conv_ops, "samples_side_by_side", spy)
    assert gradcheck_with_random_dy(lambda *a: ours(*a, **kw), arrays)
    assert side and all(side)


@pytest.mark.parametrize("name, kw, shapes", FEW_PIXELS)
def test_few_pixels_many_channels_match_torch(torch, backend, name, kw, shapes):
    arrays = [_randn(shape, seed) for seed, shape in enumerate(shapes)]
    ours = {"conv2d": conv2d, "conv_transpose2d": conv_transpose2d}[name]
    _compare(torch, lambda *a: ours(*a, **kw), lambda *a: getattr(torch.nn.functional, name)(*a, **kw), *arrays)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 4), G=st.integers(1, 3), R=st.integers(1, 9), Q=st.integers(1, 40),
       P=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_sum_over_samples_is_the_sum_of_per_sample_products(n, G, R, Q, P, seed):
    """Both ways (side by side when P*(R+Q) < R*Q, per sample otherwise) give sum_n a[n] @ b[n].T,
    a new array, and leave a and b alone; strided inputs (a band of pixels) included."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((n, G, R, P + 2)), rng.standard_normal((n, G, Q, P + 2))
    a, b = a[..., 1:P + 1], b[..., 1:P + 1]  # not contiguous, like a band of output rows
    a0, b0 = a.copy(), b.copy()
    got = conv_ops.sum_over_samples(a, b)
    expected = np.einsum("ngrp,ngqp->grq", a, b)
    assert got.shape == (G, R, Q)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert not np.shares_memory(got, a) and not np.shares_memory(got, b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


def test_only_the_needed_gradients_are_computed_and_saved(backend):
    x, weight, bias = _randn((2, 2, 5, 5)), _randn((3, 2, 3, 3), 1), _randn((3,), 2)
    # weight frozen: x is not kept (no columns to rebuild); x frozen: dx is not computed
    y = conv2d(_t(x, True), _t(weight), _t(bias, True))
    assert y.grad_fn.saved.x is None
    dx, dweight, dbias = y.grad_fn.backward(minidl.ones_like(y)._data)[:3]
    assert dweight is None and dx.shape == x.shape and dbias.shape == (3,)
    y = conv2d(_t(x), _t(weight, True))
    assert y.grad_fn.saved.x.shape == x.shape  # backward rebuilds the columns from x
    dx, dweight, dbias = y.grad_fn.backward(minidl.ones_like(y)._data)[:3]
    assert dx is None and dbias is None and dweight.shape == weight.shape
    # transposed: backward rebuilds its columns from dy, so only x is kept (for dweight)
    y = conv_transpose2d(_t(x, True), _t(_randn((2, 3, 3, 3), 3)))
    assert y.grad_fn.saved.x is None


# ---- memory: blocks of columns, chunks of the batch ------------------------------------------------

def _forward_backward(fn, arrays, dy_seed=5):
    tensors = [_t(a, True) for a in arrays]
    y = fn(*tensors)
    (y * _t(_randn(y.shape, dy_seed))).sum().backward()
    return y, [t.grad.data for t in tensors]


def test_conv_blocks_cover_the_batch_in_samples_or_row_bands(column_limit):
    # 5 samples, 4 output rows of 2 pixels of 50 bytes of columns each: 400 bytes per sample
    def blocks():
        return [((s.start, s.stop), (r.start, r.stop)) for s, r in conv_ops.conv_blocks(5, 4, 2, 50)]
    assert blocks() == [((0, 5), (0, 4))]  # all fits in one block
    column_limit(2 * 400 + 7)  # two samples per block
    assert blocks() == [((0, 2), (0, 4)), ((2, 4), (0, 4)), ((4, 5), (0, 4))]
    column_limit(250)  # less than a sample: bands of 2 rows of one sample
    assert blocks() == [((n, n + 1), (r, r + 2)) for n in range(5) for r in (0, 2)]
    column_limit(1)  # less than a row: one row at a time
    assert blocks() == [((n, n + 1), (r, r + 1)) for n in range(5) for r in range(4)]
    assert conv_ops.conv_blocks(0, 4, 2, 50) == []
    column_limit(None)  # a large image: bands of BLOCK_BYTES, at least MIN_BLOCK_PIXELS pixels
    bands = conv_ops.conv_blocks(1, 256, 256, 288 * 4)  # 32 channels, 3x3: 295 KB per row
    assert [r.stop - r.start for _, r in bands] == [16] * 16  # 16 rows = 4096 pixels = 4.7 MB
    bands = conv_ops.conv_blocks(1, 64, 64, 64 * 4)  # 1 MiB per sample: one block
    assert [r.stop - r.start for _, r in bands] == [64]


@pytest.mark.parametrize("which", ["conv2d", "conv2d_same", "conv_transpose2d"])
def test_blocked_and_chunked_batch_give_the_same_results(backend, column_limit, which):
    x, bias = _randn((5, 4, 7, 6)), _randn((6,), 2)
    if which == "conv2d":
        weight = _randn((6, 2, 3, 2), 1)
        per_row = 4 * 3 * 2 * 4 * 8  # C*KH*KW*OW*itemsize: OH = OW = 4 (stride 2, padding 1)
        blocks = {2 * 4 * per_row + 7: 3, 2 * per_row: 10, 1: 20}  # limit -> blocks of 5 samples

        def fn(x, w, b):
            return conv2d(x, w, b, stride=2, padding=1, groups=2)
    elif which == "conv2d_same":  # the explicit-canvas path (even kernel width)
        weight = _randn((6, 4, 3, 2), 1)
        per_row = 4 * 3 * 2 * 6 * 8  # OH = 7, OW = 6
        blocks = {2 * 7 * per_row + 7: 3, 3 * per_row: 15, 1: 35}

        def fn(x, w, b):
            return conv2d(x, w, b, padding="same")
    else:
        weight = _randn((4, 3, 3, 2), 1)
        per_sample = 7 * 6 * 6 * 3 * 2 * 8  # H*W*F*KH*KW*itemsize
        blocks = {2 * per_sample + 7: 3, 1: 5}  # chunks of whole samples

        def fn(x, w, b):
            return conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2)
    y_ref, grads_ref = _forward_backward(fn, [x, weight, bias])
    saved = fn(_t(x), _t(weight, True), _t(bias)).grad_fn.saved
    assert len(saved.blocks if which != "conv_transpose2d" else saved.chunks) == 1  # default: one
    for limit, count in blocks.items():
        column_limit(limit)
        saved = fn(_t(x), _t(weight, True), _t(bias)).grad_fn.saved
        assert len(saved.blocks if which != "conv_transpose2d" else saved.chunks) == count
        y, grads = _forward_backward(fn, [x, weight, bias])
        # bands that share input rows add their col2im there in another order: rounding only
        np.testing.assert_allclose(y.data, y_ref.data, rtol=1e-13, atol=1e-13)
        for got, expected in zip(grads, grads_ref):
            np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


def test_windows_that_tile_the_image_skip_the_kernels(torch, backend, monkeypatch):
    """1x1 convolutions and kernel == stride (the U-Net's 2x2/2 up-convolution): im2col is a
    reshape, so the im2col / col2im kernels are never called (the Numba backend's tile copies,
    tests/backend/test_tile_kernels.py, are looked up and absent here); results still match PyTorch."""
    TF = torch.nn.functional
    class NoKernels:
        def __getattr__(self, name):
            if name in ("unfold_tiles", "fold_tiles"):
                raise AttributeError(name)
            raise AssertionError(f"kernel {name} called for windows that tile the image")

    monkeypatch.setattr(conv_ops, "kernels_for", lambda array: NoKernels())
    x = _randn((2, 6, 4, 6))
    w1, w2, wt = _randn((3, 6, 1, 1), 1), _randn((4, 3, 2, 3), 2), _randn((6, 5, 2, 2), 3)
    b = _randn((5,), 4)
    _compare(torch, lambda x, w: conv2d(x, w), lambda x, w: TF.conv2d(x, w), x, w1, None, 0)
    _compare(torch, lambda x, w: conv2d(x, w, stride=(2, 3), groups=2),
             lambda x, w: TF.conv2d(x, w, stride=(2, 3), groups=2), x, w2, None, 1)
    _compare(torch, lambda x, w, b: conv_transpose2d(x, w, b, stride=2),
             lambda x, w, b: TF.conv_transpose2d(x, w, b, stride=2), x, wt, b, 2)


def test_conv2d_keeps_only_small_columns_in_one_block(backend, column_limit, monkeypatch):
    """The forward's columns are kept for dweight when one block holds them and they are at most
    KEPT_COLUMNS_BYTES; otherwise backward rebuilds each block's from x (saved in every case)."""
    x, weight = _randn((4, 2, 6, 6)), _randn((3, 2, 3, 3), 1)
    with conv_algorithm("im2col"):
        saved = conv2d(_t(x), _t(weight, True), padding=1).grad_fn.saved
        assert saved.cols.shape == (4, 18, 36) and saved.x.shape == x.shape
        xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = np.stack([xpad[:, c, p:p + 6, q:q + 6].reshape(4, 36)  # cols[n, (c, p, q), (i, j)]
                         for c in range(2) for p in range(3) for q in range(3)], axis=1)
        np.testing.assert_array_equal(minidl.backend.to_host(saved.cols), cols)
        assert conv2d(_t(x), _t(weight), padding=1).grad_fn is None  # no gradient: nothing saved
        column_limit(16 * 18 * 8)  # several blocks
        saved = conv2d(_t(x), _t(weight, True), padding=1).grad_fn.saved
        assert saved.cols is None and saved.x.shape == x.shape
        column_limit(None)
        monkeypatch.setattr(conv_ops, "KEPT_COLUMNS_BYTES", cols.nbytes - 1)
        saved = conv2d(_t(x), _t(weight, True), padding=1).grad_fn.saved
        assert saved.cols is None and saved.x.shape == x.shape


# ---- backward of stride-1 convolutions: the rotated kernel -----------------------------------
# (padding, dilation, groups, kernel): every case has stride 1 and padding <= D*(K-1) on top/left,
# so backward takes the rotated-kernel path; 'same' with an even kernel pads bottom/right more.
FLIPPED_CASES = [
    (1, 1, 1, (3, 3)),          # the U-Net's 3x3 'same'
    (0, 1, 1, (3, 2)),          # 'valid', non-square kernel
    ("same", (2, 1), 1, (2, 3)),  # even dilated kernel: asymmetric padding (the canvas path)
    ((2, 0), 2, 2, (2, 3)),     # padding = D*(K-1) on top: the rotated conv has no padding there
    (0, 1, 3, (1, 1)),          # 1x1: dx = Wm.T @ dY through the tiles path
    ((1, 2), (1, 2), 1, (4, 2)),
]


@pytest.fixture
def rotated_kernel(monkeypatch):
    monkeypatch.setattr(conv_algorithms, "_warned", set())  # each test sees its warning once
    with conv_algorithm("rotated_kernel"):
        yield


def _dx_dweight(route, x, weight, bias, dy, **kw):
    """dx and dweight of conv2d(x, weight, bias, **kw) by ``route``, checked to be the one that ran."""
    tx, tw = _t(x, True), _t(weight, True)
    with conv_algorithm(route):
        y = conv2d(tx, tw, _t(bias), **kw)
    assert type(y.grad_fn) is {"im2col": conv_ops.Conv2d, "rotated_kernel": Conv2dRotatedKernel}[route]
    y.backward(_t(dy))
    return tx.grad.numpy(), tw.grad.numpy()


@pytest.mark.parametrize("padding, dilation, groups, kernel", FLIPPED_CASES)
def test_rotated_kernel_backward_matches_col2im_and_torch(torch, backend, rotated_kernel, padding, dilation,
                                                          groups, kernel):
    TF = torch.nn.functional
    x, bias = _randn((3, 6, 7, 8)), _randn((12,), 2)
    weight = _randn((12, 6 // groups) + kernel, 1)
    kw = dict(padding=padding, dilation=dilation, groups=groups)

    def fn(x, w, b):
        y = conv2d(x, w, b, **kw)
        assert type(y.grad_fn) is Conv2dRotatedKernel
        return y

    _compare(torch, fn, lambda x, w, b: TF.conv2d(x, w, b, **kw), x, weight, bias, seed=3)
    dy = _randn(conv2d(_t(x), _t(weight), **kw).shape, 7)
    rotated = _dx_dweight("rotated_kernel", x, weight, bias, dy, **kw)
    textbook = _dx_dweight("im2col", x, weight, bias, dy, **kw)
    for ours, theirs in zip(rotated, textbook):  # the same products in another order: equal up to rounding
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_rotated_kernel_gradient_check(backend, rotated_kernel):
    arrays = [_randn((2, 3, 7, 6)), _randn((4, 3, 3, 2), 1), _randn((4,), 2)]
    assert gradcheck_with_random_dy(lambda *a: conv2d(*a, padding=(1, 0), dilation=(1, 2)), arrays)


@pytest.mark.parametrize("stride, padding, dilation", [(2, 1, 1), ((1, 2), 1, 1), (1, 3, 1), (1, (1, 3), 1),
                                                       (1, (0, 3), (1, 2))])
def test_strided_or_overpadded_conv_runs_on_im2col_and_says_so(torch, backend, rotated_kernel, stride, padding,
                                                               dilation):
    """Stride > 1 (dy's pixels are spread out) or padding beyond D*(K-1) (the rotated conv
    would need negative padding): the textbook route, still equal to PyTorch."""
    TF = torch.nn.functional
    x, weight, bias = _randn((2, 4, 7, 6)), _randn((5, 4, 3, 2), 1), _randn((5,), 2)

    def fn(x, w, b):
        y = conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
        assert type(y.grad_fn) is conv_ops.Conv2d
        return y

    with pytest.warns(RuntimeWarning, match="conv_algorithm\\('rotated_kernel'\\) cannot take"):
        _compare(torch, fn, lambda x, w, b: TF.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation),
                 x, weight, bias, seed=4)


def test_rotated_kernel_backward_with_only_one_gradient(torch, backend, rotated_kernel):
    """dx alone (frozen weight) and dweight alone (frozen input) on the rotated-kernel route."""
    TF = torch.nn.functional
    x, weight = _randn((2, 3, 6, 5)), _randn((4, 3, 3, 3), 1)
    dy = _randn((2, 4, 6, 5), 2)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    (TF.conv2d(tx, tw, padding=1) * torch.tensor(dy)).sum().backward()
    y = conv2d(_t(x, True), _t(weight), padding=1)
    dx, dweight = y.grad_fn.backward(_t(dy)._data)[:2]
    assert dweight is None
    np.testing.assert_allclose(minidl.tensor(dx).numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    y = conv2d(_t(x), _t(weight, True), padding=1)
    dx, dweight = y.grad_fn.backward(_t(dy)._data)[:2]
    assert dx is None
    np.testing.assert_allclose(minidl.tensor(dweight).numpy(), tw.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("in_size, out_size, kernel, stride, top_left, dilation", [
    ((7, 6), (7, 6), (3, 3), (1, 1), (1, 1), (1, 1)),   # 'same' 3x3
    ((7, 6), (7, 6), (2, 3), (1, 1), (1, 1), (2, 1)),   # 'same', even dilated: extra bottom row
    ((7, 6), (3, 2), (3, 2), (2, 3), (0, 0), (1, 1)),   # no padding: an input column past the canvas
    ((5, 4), (5, 4), (1, 1), (1, 1), (0, 0), (1, 1)),   # no padding at all: a view of x
])
def test_canvas_band_is_a_band_of_the_padded_input(in_size, out_size, kernel, stride, top_left, dilation):
    lowering = conv_ops.Lowering(in_size, out_size, kernel, stride, top_left, dilation)
    x = _randn((2, 3) + in_size)
    (PT, PL), (HC, WC) = top_left, lowering.canvas
    padded = np.zeros((2, 3, HC + in_size[0], WC + in_size[1]))  # by hand: x placed at (PT, PL)
    padded[:, :, PT:PT + in_size[0], PL:PL + in_size[1]] = x
    padded = padded[:, :, :HC, :WC]
    for r0 in range(HC):
        for r1 in range(r0 + 1, HC + 1):
            np.testing.assert_array_equal(lowering.canvas_band(x, r0, r1), padded[:, :, r0:r1])


def test_column_buffer_limit_setting(column_limit):
    assert conv_ops.get_column_buffer_limit() == conv_ops.DEFAULT_COLUMN_BUFFER_LIMIT == 512 * 2**20
    assert column_limit(1000) == 512 * 2**20  # returns the previous limit
    assert conv_ops.get_column_buffer_limit() == 1000
    assert column_limit(None) == 1000 and conv_ops.get_column_buffer_limit() == 512 * 2**20
    for bad in (0, -5, 1.5, True, "1MB"):
        with pytest.raises(ValueError, match="set_column_buffer_limit: nbytes must be a positive int"):
            column_limit(bad)


# ---- errors ------------------------------------------------------------------------------------

def _x(*shape):
    return _t(np.zeros(shape))


CONV2D_ERRORS = [
    (lambda: conv2d(_x(1, 3, 5, 5), _x(8, 4, 3, 3)),
     r"conv2d: input has 3 channels but weight expects 4 \(weight shape \(8, 4, 3, 3\), groups=1\)"),
    (lambda: conv2d(_x(1, 4, 5, 5), _x(8, 1, 3, 3), groups=2),
     r"conv2d: input has 4 channels but weight expects 2 \(weight shape \(8, 1, 3, 3\), groups=2\)"),
    (lambda: conv2d(_x(1, 3, 5, 5), _x(4, 1, 3, 3), groups=2),
     r"conv2d: input has 3 channels, which groups=2 does not divide \(input shape \(1, 3, 5, 5\)\)"),
    (lambda: conv2d(_x(1, 4, 5, 5), _x(3, 2, 3, 3), groups=2),
     r"conv2d: weight has 3 output channels, which groups=2 does not divide \(weight shape \(3, 2, 3, 3\)\)"),
    (lambda: conv2d(_x(1, 1, 4, 4), _x(1, 1, 3, 3), dilation=2),
     r"conv2d: kernel size \(dilated\) \(5, 5\) is larger than the padded input \(4, 4\)"),
    (lambda: conv2d(_x(1, 1, 2, 2), _x(1, 1, 3, 3), padding=(0, 1)),
     r"conv2d: kernel size \(dilated\) \(3, 3\) is larger than the padded input \(2, 4\)"),
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=2, padding="same"),
     r"conv2d: padding='same' is not supported for strided convolutions \(stride=\(2, 2\)\)"),
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), padding="full"),
     r"conv2d: invalid padding string 'full', expected 'same' or 'valid'"),
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), padding=-1),
     r"conv2d: padding must be non-negative, got \(-1, -1\)"),
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), padding=(1, 2, 3)),
     r"conv2d: padding must be an int or a pair of ints, got \(1, 2, 3\)"),
    (lambda: conv2d(_x(1, 2, 5, 5), _x(4, 2, 3, 3), _x(3)),
     r"conv2d: bias must have shape \(4,\) \(one value per output channel of weight \(4, 2, 3, 3\)\), "
     r"got shape \(3,\)"),
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=0),
     r"conv2d: stride must be positive, got \(0, 0\)"),
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), stride=(1, -1)),
     r"conv2d: stride must be positive, got \(1, -1\)"),
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), dilation=(0, 1)),
     r"conv2d: dilation must be positive, got \(0, 1\)"),
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 9)),
     r"conv2d: weight must be 4-D \(out_channels, in_channels/groups, kH, kW\), got shape \(1, 9\)"),
    (lambda: conv2d(_x(5, 5), _x(1, 1, 3, 3)),
     r"conv2d: input must be 3-D or 4-D, got shape \(5, 5\)"),
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), groups=0),
     r"conv2d: groups must be a positive int, got 0"),
    (lambda: conv2d(np.zeros((1, 1, 5, 5)), _x(1, 1, 3, 3)),
     r"conv2d: input must be a minidl Tensor, got ndarray"),
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3).to(minidl.float32)),
     r"conv2d: expected scalar type Double but found Float"),  # PyTorch's message: no promotion
    (lambda: conv2d(_x(1, 1, 5, 5), _x(1, 1, 3, 3), _x(1).to(minidl.float32)),
     r"conv2d: Input type \(double\) and bias type \(float\) should be the same"),
    (lambda: conv2d(minidl.zeros(1, 1, 5, 5, dtype=minidl.int64), _x(1, 1, 3, 3)),
     r"conv2d: input must be a floating-point tensor, got dtype int64"),
]


@pytest.mark.parametrize("index", range(len(CONV2D_ERRORS)))
def test_conv2d_errors(backend, index):
    call, message = CONV2D_ERRORS[index]
    with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
        call()


CONV_TRANSPOSE2D_ERRORS = [
    (lambda: conv_transpose2d(_x(1, 2, 5, 5), _x(3, 2, 3, 3)),
     r"conv_transpose2d: input has 2 channels but weight expects 3 "
     r"\(weight shape \(3, 2, 3, 3\), groups=1\)"),
    (lambda: conv_transpose2d(_x(1, 3, 5, 5), _x(3, 2, 3, 3), groups=2),
     r"conv_transpose2d: weight has 3 input channels, which groups=2 does not divide"),
    (lambda: conv_transpose2d(_x(1, 2, 5, 5), _x(2, 2, 3, 3), stride=2, output_padding=2),
     r"conv_transpose2d: output padding must be smaller than either stride or dilation, but got "
     r"output_padding_height: 2 output_padding_width: 2 stride_height: 2 stride_width: 2 "
     r"dilation_height: 1 dilation_width: 1"),
    (lambda: conv_transpose2d(_x(1, 2, 5, 5), _x(2, 2, 3, 3), output_padding=(0, 1)),
     r"conv_transpose2d: output padding must be smaller than either stride or dilation"),
    (lambda: conv_transpose2d(_x(1, 2, 5, 5), _x(2, 2, 3, 3), padding="same"),
     r"conv_transpose2d: padding must be an int or a pair of ints, got 'same'"),
    (lambda: conv_transpose2d(_x(1, 2, 1, 1), _x(2, 2, 3, 3), padding=2),
     r"conv_transpose2d: the output size \(-1, -1\) is not positive"),
    (lambda: conv_transpose2d(_x(1, 2, 5, 5), _x(2, 2, 3, 3), _x(3)),
     r"conv_transpose2d: bias must have shape \(2,\)"),
    (lambda: conv_transpose2d(_x(1, 2, 5, 5), _x(2, 2, 3)),
     r"conv_transpose2d: weight must be 4-D \(in_channels, out_channels/groups, kH, kW\)"),
    (lambda: conv_transpose2d(_x(1, 2, 5, 5), _x(2, 2, 3, 3), dilation=0),
     r"conv_transpose2d: dilation must be positive, got \(0, 0\)"),
    (lambda: conv_transpose2d(_x(1, 2, 5, 5), _x(2, 2, 3, 3), output_padding=-1),
     r"conv_transpose2d: output_padding must be non-negative, got \(-1, -1\)"),
]


@pytest.mark.parametrize("index", range(len(CONV_TRANSPOSE2D_ERRORS)))
def test_conv_transpose2d_errors(backend, index):
    call, message = CONV_TRANSPOSE2D_ERRORS[index]
    with pytest.raises(ValueError, match=message):
        call()


# ---- nn.Conv2d / nn.ConvTranspose2d ----------------------------------------------------------------

def _copy_from_torch(ours, theirs):
    ours.weight.data[...] = theirs.weight.detach().numpy()
    if theirs.bias is not None:
        ours.bias.data[...] = theirs.bias.detach().numpy()


def _layer_matches_torch(torch, ours, theirs, x, seed=0, **call):
    _copy_from_torch(ours, theirs)
    xo, xt = _t(x, True), torch.tensor(x, requires_grad=True)
    yo, yt = ours(xo, **call), theirs(xt, **call)
    assert_close(yo, yt.detach().numpy(), what="forward")
    dy = _randn(yt.shape, seed + 9)
    (yo * _t(dy)).sum().backward()
    (yt * torch.tensor(dy)).sum().backward()
    assert_close(xo.grad, xt.grad.numpy(), what="dx")
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), what="dweight")
    if theirs.bias is not None:
        assert_close(ours.bias.grad, theirs.bias.grad.numpy(), what="dbias")
    return yo


@pytest.mark.parametrize("args, kw", [
    ((4, 6, 3), dict()),
    ((4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, bias=False)),
    ((4, 4, 3), dict(padding="same", groups=4)),
    ((4, 6, (4, 3)), dict(padding="same", dilation=(1, 2))),
    ((4, 2, 3), dict(padding="valid")),
    ((4, 6, 3), dict(padding=1, padding_mode="reflect")),
    ((4, 6, (3, 4)), dict(padding=(2, 1), stride=2, padding_mode="reflect")),
    ((4, 6, 4), dict(padding="same", padding_mode="reflect")),
    ((4, 6, 3), dict(padding=(1, 2), padding_mode="replicate", groups=2)),
])
def test_nn_conv2d_matches_torch(torch, backend, args, kw):
    ours, theirs = Conv2d(*args, **kw, dtype=minidl.float64), torch.nn.Conv2d(*args, **kw).double()
    assert repr(ours) == repr(theirs)
    _layer_matches_torch(torch, ours, theirs, _randn((2, 4, 7, 6)))
    assert ours(_t(_randn((4, 7, 6)))).shape == theirs(torch.tensor(_randn((4, 7, 6)))).shape  # unbatched


@pytest.mark.parametrize("args, kw, x_shape, output_size", [
    ((4, 6, 3), dict(), (2, 4, 5, 4), None),
    ((4, 6, (3, 2)), dict(stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 4), None),
    ((4, 2, 3), dict(stride=(2, 3), dilation=(1, 2), bias=False), (2, 4, 3, 4), None),
    ((4, 6, 3), dict(stride=3, padding=1), (2, 4, 4, 3), (11, 9)),  # min (10, 7) .. max (12, 9)
    ((4, 6, 3), dict(stride=2), (2, 4, 4, 3), (2, 6, 10, 7)),  # full (N, F, h, w) form
    ((4, 6, 3), dict(stride=2), (4, 4, 3), (6, 10, 7)),  # unbatched, (F, h, w) form
])
def test_nn_conv_transpose2d_matches_torch(torch, backend, args, kw, x_shape, output_size):
    ours = ConvTranspose2d(*args, **kw, dtype=minidl.float64)
    theirs = torch.nn.ConvTranspose2d(*args, **kw).double()
    assert repr(ours) == repr(theirs)
    y = _layer_matches_torch(torch, ours, theirs, _randn(x_shape), output_size=output_size)
    if output_size is not None:
        assert tuple(y.shape[-2:]) == tuple(output_size[-2:])


def test_nn_conv_transpose2d_output_size_errors(backend):
    layer = ConvTranspose2d(4, 6, 3, stride=2, dtype=minidl.float64)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: requested an output size of \(20, 20\), but "
                                         r"valid sizes range from \(11, 11\) to \(12, 12\) \(for an input "
                                         r"of size \(5, 5\), stride \(2, 2\)\)"):
        layer(_x(1, 4, 5, 5), output_size=(20, 20))
    with pytest.raises(ValueError, match=r"ConvTranspose2d: for 4-D input, output_size must have 2 or 4 "
                                         r"elements \(got 3\)"):
        layer(_x(1, 4, 5, 5), output_size=(4, 11, 11))


@pytest.mark.parametrize("make, message", [
    (lambda: Conv2d(3, 4, 3, groups=2), r"Conv2d: in_channels=3 must be divisible by groups=2"),
    (lambda: Conv2d(4, 3, 3, groups=2), r"Conv2d: out_channels=3 must be divisible by groups=2"),
    (lambda: Conv2d(4, 4, 3, groups=0), r"Conv2d: groups must be a positive integer, got 0"),
    (lambda: Conv2d(4, 4, 3, padding="full"), r"Conv2d: invalid padding string 'full'"),
    (lambda: Conv2d(4, 4, 3, stride=2, padding="same"),
     r"Conv2d: padding='same' is not supported for strided convolutions"),
    (lambda: Conv2d(4, 4, 3, padding_mode="mirror"),
     r"Conv2d: padding_mode must be one of \['zeros', 'reflect', 'replicate'\], "
     r"but got padding_mode='mirror'"),
    (lambda: Conv2d(4, 4, 3, padding_mode="circular"), r"'circular' is not implemented in minidl"),
    (lambda: Conv2d(4, 4, 0), r"Conv2d: kernel_size, stride and dilation must be positive"),
    (lambda: Conv2d(4, 4, 3, padding=-1), r"Conv2d: padding must be non-negative, got \(-1, -1\)"),
    (lambda: ConvTranspose2d(4, 4, 3, padding_mode="reflect"),
     r'Only "zeros" padding mode is supported for ConvTranspose2d'),
    (lambda: ConvTranspose2d(4, 4, 3, padding="same"),
     r"ConvTranspose2d: padding must be an int or a pair of ints, got 'same'"),
])
def test_nn_constructor_errors(backend, make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("layer, fan_in", [
    (lambda: Conv2d(8, 64, (5, 3)), 8 * 15),
    (lambda: Conv2d(8, 64, 3, groups=4), 2 * 9),
    (lambda: ConvTranspose2d(64, 8, (5, 3)), 8 * 15),  # fan_in from weight (C, F/G, KH, KW): F/G*KH*KW
    (lambda: ConvTranspose2d(64, 8, 3, groups=2), 4 * 9),
])
def test_nn_default_init_bounds(backend, layer, fan_in):
    """PyTorch's default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    layer = layer()
    bound = 1 / math.sqrt(fan_in)
    assert init_fan_in(layer.weight) == fan_in
    w, b = layer.weight.detach().numpy().astype(np.float64), layer.bias.detach().numpy().astype(np.float64)
    assert layer.weight.dtype == minidl.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.97 * bound
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.1)
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.5 * bound


def init_fan_in(weight):
    from minidl.nn.init import _calculate_fan_in_and_fan_out
    return _calculate_fan_in_and_fan_out(weight)[0]


def test_nn_layers_register_parameters_and_bias_false(backend):
    layer = Conv2d(2, 3, 3, bias=False)
    assert layer.bias is None and [name for name, _ in layer.named_parameters()] == ["weight"]
    assert layer.weight.shape == (3, 2, 3, 3) and layer.weight.requires_grad
    assert ConvTranspose2d(2, 6, (3, 2), groups=2).weight.shape == (2, 3, 3, 2)
    assert Conv2d(2, 3, 3, dtype=minidl.float64).bias.dtype == minidl.float64
    minidl.manual_seed(3)
    a = Conv2d(2, 3, 3).weight.detach().numpy().copy()
    minidl.manual_seed(3)
    np.testing.assert_array_equal(Conv2d(2, 3, 3).weight.data, a)


@pytest.mark.parametrize("geometry, fast_route_from, numba_route", [
    (((2, 128, 11, 11), (1024, 128, 7, 7), 0), (2, 128, 52, 52), "shifted_rows"),  # FCN-8s's fc6: 50 positions
    (((2, 1024, 5, 5), (1024, 1024, 1, 1), 0), (2, 1024, 46, 46), "rotated_kernel"),  # its fc7
    (((2, 128, 8, 8), (256, 128, 3, 3), 1), (32, 128, 8, 8), "winograd"),           # a U-Net's bottom
    (((2, 64, 2, 2), (64, 64, 3, 3), 1), (2, 64, 12, 12), "direct"),               # 8 positions, 64 filters
])
def test_auto_takes_im2col_when_the_weight_is_the_large_operand(backend, geometry, fast_route_from, numba_route):
    """At most WEIGHT_BOUND[route] output positions per filter: im2col under 'auto'; with more
    positions the kernel module's fast route again (the reference offers the rotated kernel
    only); a forced route is still taken; a depthwise weight is never the large operand."""
    from minidl.backend import kernel_module
    x_shape, w_shape, p = geometry
    kern, pad = kernel_module(backend), ((p, p), (p, p))
    route = {"numba": numba_route, "reference": "rotated_kernel"}[backend]

    def choose(x_shape, w_shape, groups=1):
        return conv_algorithms.choose_conv2d(kern, x_shape, w_shape, (1, 1), pad, (1, 1), groups)

    def positions(x_shape):
        N, _, H, W = x_shape
        return N * (H + 2 * p - w_shape[2] + 1) * (W + 2 * p - w_shape[3] + 1)

    assert positions(x_shape) <= conv_algorithms.WEIGHT_BOUND[route] * w_shape[0] < positions(fast_route_from)
    assert choose(x_shape, w_shape) is conv_ops.Conv2d
    assert choose(fast_route_from, w_shape) is conv_algorithms.ROUTES[route]
    with conv_algorithm("rotated_kernel"):
        assert choose(x_shape, w_shape) is Conv2dRotatedKernel
    C = x_shape[1]
    assert not conv_algorithms._weight_bound("depthwise", x_shape, (C, 1, 3, 3), (1, 1), pad, (1, 1), C)
