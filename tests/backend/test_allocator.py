"""The cache of large CPU arrays (minidl/backend/allocator.py): a buffer is handed out again only
when nothing refers to it, whatever refers to it (the array, a view, a Tensor, a saved ReLU
output); small arrays are not cached; empty_cache and set_cache_enabled do what they say."""
import gc

import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import traced_peak_bytes
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


def test_batch_norm_outputs_and_dx_come_from_the_cache(rng, backend):
    """Training batch norm writes y, x_hat and (backward) dx afresh every step: from the cache
    (fresh memory page-faulted ~1000 times a ResNet34UNet step); the same values either way."""
    if backend == "cupy":
        pytest.skip("the cache is CPU only")
    x_np = rng.standard_normal((2, 32, 64, 64)).astype(np.float32)  # 1 MiB
    dy_np = rng.standard_normal(x_np.shape).astype(np.float32)
    bn = minidl.nn.BatchNorm2d(32)

    def run():
        x = minidl.tensor(x_np, requires_grad=True)
        y = bn(x)
        cached = allocator.holds(y._data)
        (y * minidl.tensor(dy_np)).sum().backward()
        return cached, allocator.holds(x.grad._data), y.detach().numpy().copy(), x.grad.numpy().copy()

    on = run()
    if backend == "numba":  # the fused kernels' route
        assert on[0] and on[1]
    allocator.set_cache_enabled(False)
    off = run()
    assert not off[0] and not off[1]
    np.testing.assert_array_equal(on[2], off[2])
    np.testing.assert_array_equal(on[3], off[3])


MiB = 2**20


def test_the_cache_holds_no_more_than_was_in_use_at_once():
    """Two 1 MiB buffers in use at once, then freed: a 2 MiB request releases them rather
    than holding 4 MiB, when at most 2 MiB were ever in use."""
    a, b = allocator.empty((MiB,), np.uint8), allocator.empty((MiB,), np.uint8)
    assert allocator.peak_in_use_bytes() == 2 * MiB
    del a, b
    c = allocator.empty((2 * MiB,), np.uint8)
    assert allocator.cached_bytes() == 2 * MiB and allocator.holds(c)
    assert allocator.peak_in_use_bytes() == 2 * MiB


def test_buffers_in_use_are_never_released_to_stay_within_the_mark():
    a = allocator.empty((MiB,), np.uint8)  # in use throughout
    b = allocator.empty((MiB,), np.uint8)
    del b
    c = allocator.empty((2 * MiB,), np.uint8)  # 3 MiB in use now: the mark rises, a stays
    a[...], c[...] = 1, 2
    assert allocator.holds(a) and allocator.holds(c) and not np.shares_memory(a, c)
    assert allocator.cached_bytes() == allocator.peak_in_use_bytes() == 3 * MiB
    assert np.all(a == 1)


def test_the_free_buffer_handed_out_longest_ago_is_released_first():
    old = allocator.empty((2 * MiB,), np.uint8)
    recent = allocator.empty((MiB,), np.uint8)  # 3 MiB in use at once: the mark
    recent_address = _address(recent)
    del old, recent
    again = allocator.empty((MiB,), np.uint8)  # hands out the 1 MiB buffer again: recent
    assert _address(again) == recent_address
    del again
    new = allocator.empty((3 * MiB // 2,), np.uint8)  # 1.5 MiB must go: the 2 MiB buffer
    assert allocator.cached_bytes() == MiB + 3 * MiB // 2
    assert _address(allocator.empty((MiB,), np.uint8)) == recent_address
    del new


def test_empty_cache_restarts_the_mark_from_what_is_in_use():
    kept = allocator.empty((MiB,), np.uint8)
    freed = allocator.empty((2 * MiB,), np.uint8)
    del freed
    allocator.empty_cache()
    assert allocator.peak_in_use_bytes() == MiB == kept.nbytes


def test_make_room_releases_free_buffers_until_the_temporaries_fit_within_the_mark():
    """An op about to allocate temporaries outside the cache asks for room: the cache releases
    free buffers (oldest first) until it and the temporaries fit within its mark, no more, and
    never a buffer in use."""
    kept = allocator.empty((MiB,), np.uint8)  # in use throughout
    old = allocator.empty((MiB,), np.uint8)
    recent = allocator.empty((2 * MiB,), np.uint8)  # 4 MiB in use at once: the mark
    recent_address = _address(recent)
    del old, recent
    assert allocator.make_room(0) == 0  # the cache is within its mark: nothing to release
    assert allocator.make_room(MiB // 2) == MiB  # the buffer handed out longest ago goes
    assert allocator.cached_bytes() == 3 * MiB
    assert allocator.make_room(MiB) == 0  # 3 MiB cached + 1 MiB fit within the 4 MiB mark
    assert _address(allocator.empty((2 * MiB,), np.uint8)) == recent_address  # still cached
    assert allocator.make_room(8 * MiB) == 2 * MiB  # every free buffer, and only those
    assert allocator.cached_bytes() == MiB and allocator.holds(kept)


def _traced_step_peak(step):
    """tracemalloc's peak of one ``step()`` above what was live before it, after two warm-up
    steps and an emptied cache (as benchmarks/unet_step.py measures the U-Net step)."""
    step()
    step()
    gc.collect()
    allocator.empty_cache()
    return traced_peak_bytes(step)


def test_a_unet_step_peaks_about_as_high_with_the_cache_as_without(rng):
    """The backward of a U-Net frees the forward's large arrays level by level while it asks
    for arrays of the next level's sizes; a cache that kept every size's free buffers held
    both, and its step peaked 1.34x as high as without the cache (B = 8, depth 3, batch 4 of
    128x128); within its high-water mark, 1.07x."""
    import unet

    minidl.manual_seed(0)
    model = unet.UNet(in_channels=1, n_classes=2, base_channels=8, depth=3, padding="same")
    opt = minidl.optim.Adam(model.parameters(), lr=1e-3)
    x = minidl.tensor(rng.standard_normal((4, 1, 128, 128)).astype(np.float32))
    target = minidl.tensor(rng.integers(0, 2, (4, 128, 128)))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), target).backward()
        opt.step()

    with_cache = _traced_step_peak(step)
    allocator.set_cache_enabled(False)
    without_cache = _traced_step_peak(step)
    assert with_cache <= 1.1 * without_cache, (with_cache / MiB, without_cache / MiB)
