"""interpolate (minidl/ops/resize.py) and nn.Upsample against PyTorch: forward and gradient."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from helpers import compare_with_torch, gradcheck_with_random_dy
from minidl.functional.shape import interpolate
from minidl.nn.upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from minidl.ops.resize import linear_matrix, nearest_matrix, nearest_source_index


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SCALES = [0.3, 0.5, 0.7, 1.0, 1.2, 1.5, 2.0, 2.1, 2.5, 3.0, 1 / 3]


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _torch_resize_1d_as_2d(torch, x, size=None, scale_factor=None, **kwargs):
    """PyTorch's 2-D nearest kernels on (N, C, 1, W): the rule minidl follows for 1-D too.

    (PyTorch's 1-D nearest *forward* skips the n_out == n_in and n_out == 2 n_in shortcuts
    that its backward takes; see minidl/ops/resize.py.)
    """
    TF = torch.nn.functional
    size = None if size is None else (1, size if isinstance(size, int) else size[0])
    scale_factor = None if scale_factor is None else (1.0, scale_factor)
    return TF.interpolate(x[:, :, None], size=size, scale_factor=scale_factor, **kwargs)[:, :, 0]


def _sizes_or_scales(data, spatial):
    """Draw interpolate's size/scale_factor/recompute_scale_factor for input of spatial size ``spatial``."""
    kind = data.draw(st.sampled_from(["size", "size", "scale", "scale", "recompute"]))
    if kind == "size":
        size = tuple(data.draw(st.integers(1, 11)) for _ in spatial)
        return {"size": size if len(size) > 1 and data.draw(st.booleans()) else size[0]}
    factors = data.draw(st.one_of(st.sampled_from(SCALES), st.floats(0.3, 3.5)))
    if len(spatial) > 1 and data.draw(st.booleans()):
        factors = (factors, data.draw(st.one_of(st.sampled_from(SCALES), st.floats(0.3, 3.5))))
    per_dim = factors if isinstance(factors, tuple) else (factors,) * len(spatial)
    if any(int(n * s) < 1 for n, s in zip(spatial, per_dim)):
        factors = 2.0
    return {"scale_factor": factors, "recompute_scale_factor": kind == "recompute" or None}


@SETTINGS
@given(mode=st.sampled_from(["nearest", "nearest-exact", "bilinear"]), align_corners=st.booleans(),
       shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 6), st.integers(1, 6)),
       data=st.data())
def test_interpolate_2d_matches_torch(torch, backend, mode, align_corners, shape, data):
    TF = torch.nn.functional
    kwargs = _sizes_or_scales(data, shape[2:])
    kwargs["align_corners"] = align_corners if mode == "bilinear" else None
    compare_with_torch(torch, lambda x: interpolate(x, mode=mode, **kwargs),
                       lambda x: TF.interpolate(x, mode=mode, **kwargs), [_randn(shape)])


@SETTINGS
@given(mode=st.sampled_from(["nearest", "nearest-exact", "linear"]), align_corners=st.booleans(),
       shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 7)), data=st.data())
def test_interpolate_1d_matches_torch(torch, backend, mode, align_corners, shape, data):
    TF = torch.nn.functional
    kwargs = _sizes_or_scales(data, shape[2:])
    if mode == "linear":
        kwargs["align_corners"] = align_corners
        reference = TF.interpolate
    else:
        reference = lambda x, **kw: _torch_resize_1d_as_2d(torch, x, **kw)  # noqa: E731
    compare_with_torch(torch, lambda x: interpolate(x, mode=mode, **kwargs),
                       lambda x: reference(x, mode=mode, **kwargs), [_randn(shape)])


@pytest.mark.parametrize("n, size", [(5, 3), (4, 7), (6, 12), (3, 1), (7, 10)])
def test_interpolate_1d_nearest_matches_torch_1d_kernel_directly(torch, backend, n, size):
    TF = torch.nn.functional
    compare_with_torch(torch, lambda x: interpolate(x, size=size), lambda x: TF.interpolate(x, size=size),
                       [_randn((2, 1, n))])


@pytest.mark.parametrize("kwargs", [dict(size=(5, 7), mode="bilinear"),
                                    dict(size=(3, 2), mode="bilinear", align_corners=True),
                                    dict(scale_factor=2, mode="bilinear", align_corners=True),
                                    dict(scale_factor=(1.5, 0.7), mode="bilinear"),
                                    dict(size=(5, 7), mode="nearest"),
                                    dict(scale_factor=0.6, mode="nearest-exact")])
def test_interpolate_gradcheck(backend, kwargs):
    assert gradcheck_with_random_dy(lambda x: interpolate(x, **kwargs), [_randn((2, 2, 4, 3))])


def test_interpolate_1d_gradcheck(backend):
    assert gradcheck_with_random_dy(lambda x: interpolate(x, size=6, mode="linear"), [_randn((1, 2, 4))])
    assert gradcheck_with_random_dy(lambda x: interpolate(x, scale_factor=1.7), [_randn((1, 2, 4))])


def test_bilinear_worked_example_from_the_docs(backend):
    # n_in = 2 -> n_out = 4, align_corners=False: src = max((i + 0.5)/2 - 0.5, 0) = 0, 0.25, 0.75, 1.25
    # -> rows (1, 0), (0.75, 0.25), (0.25, 0.75), (0, 1)  (the last one clamped to the last entry)
    np.testing.assert_allclose(linear_matrix(2, 4, align_corners=False),
                               [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    # align_corners=True: src = i * (2 - 1)/(4 - 1) = 0, 1/3, 2/3, 1
    np.testing.assert_allclose(linear_matrix(2, 4, align_corners=True),
                               [[1, 0], [2 / 3, 1 / 3], [1 / 3, 2 / 3], [0, 1]])
    x = minidl.tensor(np.array([[[[1.0, 3.0]]]]), requires_grad=True)  # (1, 1, 1, 2)
    y = interpolate(x, size=(1, 4), mode="bilinear")
    np.testing.assert_allclose(y.detach().numpy()[0, 0, 0], [1, 1.5, 2.5, 3])
    y.backward(minidl.tensor(np.ones((1, 1, 1, 4))))
    np.testing.assert_allclose(x.grad.numpy()[0, 0, 0], [2, 2])  # column sums of A: 1 + 0.75 + 0.25 + 0


def test_nearest_rules(backend):
    np.testing.assert_array_equal(nearest_source_index(3, 6), [0, 0, 1, 1, 2, 2])  # n_out == 2 n_in: i // 2
    np.testing.assert_array_equal(nearest_source_index(5, 3), [0, 1, 3])  # floor(i * 5/3)
    np.testing.assert_array_equal(nearest_source_index(5, 7, scale_factor=1.5), [0, 0, 1, 2, 2, 3, 4])
    np.testing.assert_array_equal(nearest_source_index(4, 3, exact=True), [0, 2, 3])  # floor((i + .5) * 4/3)
    a = nearest_matrix(4, 6)
    assert a.shape == (6, 4) and (a.sum(1) == 1).all()  # each output picks exactly one input


@pytest.mark.parametrize("align_corners", [False, True])
def test_linear_matrix_rows_are_convex_weights(align_corners):
    for n_in, n_out in [(1, 5), (5, 1), (3, 8), (8, 3), (4, 4)]:
        a = linear_matrix(n_in, n_out, align_corners)
        assert a.shape == (n_out, n_in)
        np.testing.assert_allclose(a.sum(1), 1.0)
        assert (a >= 0).all() and ((a > 0).sum(1) <= 2).all()


def test_nearest_works_on_integer_input(torch, backend):
    TF = torch.nn.functional
    x = np.arange(200, 212, dtype=np.uint8).reshape(1, 1, 3, 4)  # e.g. a label mask
    got = interpolate(minidl.tensor(x), size=(5, 7))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got.numpy(), TF.interpolate(torch.tensor(x), size=(5, 7)).numpy())
    assert interpolate(minidl.tensor(x.astype(np.int64)), scale_factor=2).dtype == minidl.int64


def test_interpolate_keeps_float32(torch, backend):
    TF = torch.nn.functional
    x = minidl.tensor(_randn((1, 1, 3, 3)).astype(np.float32), requires_grad=True)
    y = interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    assert y.dtype == minidl.float32
    y.sum().backward()
    assert x.grad.dtype == minidl.float32
    expected = TF.interpolate(torch.tensor(x.detach().numpy()), scale_factor=2, mode="bilinear", align_corners=True)
    np.testing.assert_allclose(y.detach().numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_interpolate_errors(backend):
    x = minidl.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"interpolate: give exactly one of size and scale_factor, got both"):
        interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match=r"interpolate: give exactly one of size and scale_factor, got neither"):
        interpolate(x)
    with pytest.raises(ValueError, match=r"interpolate: align_corners can only be set with the interpolating "
                                         r"modes 'linear' and 'bilinear', not with mode 'nearest'"):
        interpolate(x, size=3, align_corners=False)
    with pytest.raises(ValueError, match=r"interpolate: mode 'bilinear' needs 4-D input \(N, C, H, W\), "
                                         r"got shape \(1, 2, 4\)"):
        interpolate(minidl.zeros(1, 2, 4), size=3, mode="bilinear")
    with pytest.raises(ValueError, match=r"interpolate: mode 'linear' needs 3-D input \(N, C, W\), "
                                         r"got shape \(1, 2, 4, 4\)"):
        interpolate(x, size=3, mode="linear")
    with pytest.raises(ValueError, match=r"interpolate: mode 'nearest' needs 3-D or 4-D input"):
        interpolate(minidl.zeros(1, 1, 2, 2, 2), size=3)
    with pytest.raises(NotImplementedError, match=r"interpolate: mode 'bicubic' is not implemented"):
        interpolate(x, size=3, mode="bicubic")
    with pytest.raises(ValueError, match=r"interpolate: unknown mode 'cubic'"):
        interpolate(x, size=3, mode="cubic")
    with pytest.raises(ValueError, match=r"interpolate: input and output sizes must be greater than 0, but got "
                                         r"input spatial size \(4, 4\) \(shape \(1, 2, 4, 4\)\) and output size "
                                         r"\(0, 3\)"):
        interpolate(x, size=(0, 3))
    with pytest.raises(ValueError, match=r"output size \(1, 0\)"):
        interpolate(x, scale_factor=(0.3, 0.2))
    with pytest.raises(ValueError, match=r"interpolate: scale_factor must be a positive finite number, got -2"):
        interpolate(x, scale_factor=-2)
    with pytest.raises(ValueError, match=r"interpolate: size \(2, 3, 4\) must have one entry per spatial "
                                         r"dimension of the input \(2: spatial size \(4, 4\)\)"):
        interpolate(x, size=(2, 3, 4))
    with pytest.raises(TypeError, match=r"interpolate: size must be an int or a tuple of them, got 2.5"):
        interpolate(x, size=2.5)
    with pytest.raises(ValueError, match=r"recompute_scale_factor is not meaningful with an explicit size"):
        interpolate(x, size=3, recompute_scale_factor=True)
    with pytest.raises(TypeError, match=r"interpolate: mode 'bilinear' needs a floating point input, got dtype int64"):
        interpolate(minidl.tensor([[[[1, 2], [3, 4]]]]), size=3, mode="bilinear")
    with pytest.raises(NotImplementedError, match=r"antialias=True is not implemented"):
        interpolate(x, size=3, mode="bilinear", antialias=True)


# ----------------------------------------------------------------------------- Upsample
@pytest.mark.parametrize("kwargs", [dict(scale_factor=2), dict(scale_factor=2, mode="bilinear"),
                                    dict(scale_factor=2, mode="bilinear", align_corners=True),
                                    dict(size=(5, 3)), dict(scale_factor=(1.5, 2.0), mode="nearest-exact"),
                                    dict(size=7, mode="bilinear")])
def test_upsample_matches_torch(torch, backend, kwargs):
    ours, theirs = Upsample(**kwargs), torch.nn.Upsample(**kwargs)
    assert repr(ours) == repr(theirs)
    compare_with_torch(torch, ours, theirs, [_randn((2, 3, 4, 3))])


def test_upsampling_variants_match_torch(torch, backend):
    for ours, theirs in [(UpsamplingNearest2d(scale_factor=2), torch.nn.UpsamplingNearest2d(scale_factor=2)),
                         (UpsamplingBilinear2d(size=(5, 6)), torch.nn.UpsamplingBilinear2d(size=(5, 6)))]:
        assert repr(ours) == repr(theirs)
        compare_with_torch(torch, ours, theirs, [_randn((1, 2, 3, 4))])
