"""The cache of large CPU arrays (minidl/backend/allocator.py): a buffer is handed out again only
when nothing refers to it, whatever refers to it (the array, a view, a Tensor, a saved ReLU
output); small arrays are not cached; empty_cache and set_cache_enabled do what they say."""
import gc

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.backend import allocator

LARGE = (64, 64, 64)  # float32: 1 MiB, the smallest cached size


def _address(a):
    return a.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts from an empty, enabled cache, and leaves it so."""
    previous = allocator.set_cache_enabled(True)
    gc.collect()
    allocator.empty_cache()
    yield
    gc.collect()
    allocator.empty_cache()
    allocator.set_cache_enabled(previous)


def test_a_buffer_in_use_is_not_handed_out_again():
    a = allocator.empty(LARGE, np.float32)
    b = allocator.empty(LARGE, np.float32)
    assert not np.shares_memory(a, b)
    assert a.shape == LARGE and a.dtype == np.float32 and a.flags.c_contiguous
    assert allocator.cached_bytes() == 2 * a.nbytes


def test_a_released_buffer_is_reused_for_any_shape_of_its_size():
    a = allocator.empty(LARGE, np.float32)
    address = _address(a)
    del a
    b = allocator.empty((2**18,), np.float32)  # the same bytes, another shape
    assert _address(b) == address
    c = allocator.empty((2**17,), np.float64)  # and another dtype
    assert _address(c) != address  # b still holds it
    assert allocator.cached_bytes() == 2 * 2**20


@pytest.mark.parametrize("keep", ["slice", "reshape", "tensor", "transpose"])
def test_any_view_keeps_its_buffer_in_use(keep):
    a = allocator.empty(LARGE, np.float32)
    a[...] = 1.0
    view = {"slice": lambda: a[1:], "reshape": lambda: a.reshape(-1), "transpose": lambda: a.T,
            "tensor": lambda: minidl.Tensor(a)}[keep]()  # shares a's memory (minidl.tensor copies)
    del a
    b = allocator.empty(LARGE, np.float32)
    b[...] = 2.0
    held = view.numpy() if keep == "tensor" else view
    assert not np.shares_memory(held, b)
    assert np.all(held == 1.0)


def test_small_arrays_are_not_cached():
    a = allocator.empty((100,), np.float32)
    assert a.base is None and allocator.cached_bytes() == 0


def test_empty_cache_releases_only_free_buffers():
    kept = allocator.empty(LARGE, np.float32)
    freed = allocator.empty(LARGE, np.float32)
    del freed
    allocator.empty_cache()
    assert allocator.cached_bytes() == kept.nbytes
    again = allocator.empty(LARGE, np.float32)
    assert not np.shares_memory(again, kept)


def test_a_disabled_cache_returns_plain_arrays():
    allocator.set_cache_enabled(False)
    a = allocator.empty(LARGE, np.float32)
    assert a.base is None and allocator.cached_bytes() == 0
    with pytest.raises(TypeError, match="set_cache_enabled: enabled must be True or False"):
        allocator.set_cache_enabled(1)


def test_relu_outputs_that_are_alive_never_share_memory(rng):
    """Saved for backward or held by the user, a ReLU output keeps its buffer; the gradients
    are those of the uncached computation."""
    x_np = rng.standard_normal(LARGE).astype(np.float32)
    dy = rng.standard_normal(LARGE).astype(np.float32)

    def run():
        x = minidl.tensor(x_np, requires_grad=True)
        y1 = F.relu(x)
        y2 = F.relu(x * 2.0)  # y1 is still saved by the graph and held here
        y3 = F.relu(x - 0.5)
        outs = [t.detach().numpy() for t in (y1, y2, y3)]
        assert not any(np.shares_memory(a, b) for i, a in enumerate(outs) for b in outs[i + 1:])
        ((y1 + y2 + y3) * minidl.tensor(dy)).sum().backward()
        return [o.copy() for o in outs], x.grad.numpy().copy()

    cached = run()
    assert allocator.cached_bytes() >= 3 * 2**20
    allocator.set_cache_enabled(False)
    plain = run()
    for got, expected in zip(cached[0] + [cached[1]], plain[0] + [plain[1]]):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(cached[0][0], np.maximum(x_np, 0))


def test_another_array_module_gets_its_own_empty():
    calls = []

    class OtherModule:  # stands in for CuPy, which keeps its own pool
        @staticmethod
        def empty(shape, dtype):
            calls.append((shape, dtype))
            return np.zeros(shape, dtype)

    a = allocator.empty(LARGE, np.float32, OtherModule)
    assert calls == [(LARGE, np.float32)] and a.base is None and allocator.cached_bytes() == 0


def test_holds_tells_the_cache_s_arrays_from_others():
    owner = np.empty(2**20, dtype=np.uint8)  # a uint8 base like the cache's, but not the cache's
    assert allocator.holds(allocator.empty(LARGE, np.float32))
    assert not allocator.holds(owner.view(np.float32))
    assert not allocator.holds(np.empty(LARGE, np.float32))  # owns its memory: base is None
    assert not allocator.holds(np.float32(1.0))


def test_cat_output_and_conv2d_dx_come_from_the_cache(rng, backend):
    """Both write a fresh large array every step; the cache hands them warm memory. Their
    values are the plain computation's, with the cache on or off."""
    if backend == "cupy":
        pytest.skip("the cache is CPU only")
    a_np = rng.standard_normal((1, 16, 128, 128)).astype(np.float32)  # 1 MiB
    w_np = rng.standard_normal((16, 32, 3, 3)).astype(np.float32) * 0.1
    dy_np = rng.standard_normal((1, 16, 128, 128)).astype(np.float32)

    def run():
        a = minidl.tensor(a_np, requires_grad=True)
        y = minidl.cat([a, a * 2.0], dim=1)  # (1, 32, 128, 128): 2 MiB
        cached_y = allocator.holds(y._data)
        z = F.conv2d(y, minidl.tensor(w_np), padding=1)
        (z * minidl.tensor(dy_np)).sum().backward()
        return cached_y, y.detach().numpy().copy(), a.grad.numpy().copy()

    before = allocator.cached_bytes()
    on = run()
    assert on[0] and allocator.cached_bytes() >= before + 2 * 2**21  # cat's y and conv2d's dx
    allocator.set_cache_enabled(False)
    off = run()
    np.testing.assert_array_equal(on[1], off[1])
    np.testing.assert_array_equal(on[2], off[2])
