"""minidl.Generator, generator= on the random creation functions, and randperm."""
import numpy as np
import pytest

import minidl


def test_manual_seed_returns_the_generator_and_fixes_the_numbers():
    g = minidl.Generator()
    assert g.manual_seed(3) is g and g.initial_seed() == 3
    first = (minidl.rand(4, generator=g), minidl.randn(2, 2, generator=g),
             minidl.randint(0, 10, (5,), generator=g), minidl.randperm(6, generator=g))
    g.manual_seed(3)
    again = (minidl.rand(4, generator=g), minidl.randn(2, 2, generator=g),
             minidl.randint(0, 10, (5,), generator=g), minidl.randperm(6, generator=g))
    for a, b in zip(first, again):
        assert a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy())
    assert first[0].dtype == minidl.float32 and first[2].dtype == minidl.int64


def test_a_generator_does_not_touch_the_global_one():
    state = minidl.get_rng_state()
    minidl.rand(3, generator=minidl.Generator())
    minidl.randperm(5, generator=minidl.Generator())
    assert minidl.get_rng_state() == state
    minidl.manual_seed(5)
    a = minidl.rand(3)
    minidl.manual_seed(5)
    minidl.rand(3, generator=minidl.Generator().manual_seed(5))  # draws from its own stream only
    assert np.array_equal(minidl.rand(3).numpy(), a.numpy())


def test_two_generators_with_one_seed_agree_and_different_seeds_differ():
    a, b, c = (minidl.Generator().manual_seed(s) for s in (7, 7, 8))
    assert np.array_equal(minidl.randn(5, generator=a).numpy(), minidl.randn(5, generator=b).numpy())
    assert not np.array_equal(minidl.randn(5, generator=a).numpy(), minidl.randn(5, generator=c).numpy())


def test_default_seeds_and_seed_wrapping_as_pytorch(torch):
    assert minidl.Generator().initial_seed() == torch.Generator().initial_seed()
    assert minidl.Generator().manual_seed(-1).initial_seed() == torch.Generator().manual_seed(-1).initial_seed()
    top = 2 ** 64 - 1
    assert minidl.Generator().manual_seed(top).initial_seed() == torch.Generator().manual_seed(top).initial_seed()
    for bad in (2 ** 64, -(2 ** 63) - 1):
        with pytest.raises(ValueError):
            torch.Generator().manual_seed(bad)
        with pytest.raises(ValueError, match="Overflow"):
            minidl.Generator().manual_seed(bad)
    for bad in ("3", 1.5):
        with pytest.raises(RuntimeError):
            torch.Generator().manual_seed(bad)
        with pytest.raises(RuntimeError, match="expected a long"):
            minidl.Generator().manual_seed(bad)


def test_global_functions():
    assert minidl.manual_seed(4) is minidl.default_generator
    assert minidl.initial_seed() == 4
    s = minidl.seed()
    assert isinstance(s, int) and minidl.initial_seed() == s and 0 <= s < 2 ** 63
    g = minidl.Generator()
    s = g.seed()
    assert g.initial_seed() == s
    x = minidl.rand(3, generator=g)
    assert np.array_equal(minidl.rand(3, generator=minidl.Generator().manual_seed(s)).numpy(), x.numpy())


def test_get_state_and_set_state_resume_the_stream():
    g = minidl.Generator().manual_seed(9)
    minidl.randn(3, generator=g)
    state = g.get_state()
    assert isinstance(state, minidl.Tensor) and state.dtype == minidl.uint8 and state.ndim == 1
    after = minidl.randn(4, generator=g).numpy()
    g.numpy().random(1, dtype=np.float32)  # an odd number of 32-bit draws: half a word is cached
    odd_state, odd_after = g.get_state(), g.numpy().random(3, dtype=np.float32)
    assert np.array_equal(minidl.Generator().set_state(odd_state).numpy().random(3, dtype=np.float32), odd_after)
    g.set_state(state)
    other = minidl.Generator().manual_seed(1)
    assert other.set_state(state) is other
    assert other.initial_seed() == 9
    assert np.array_equal(minidl.randn(4, generator=other).numpy(), after)
    with pytest.raises(TypeError, match="set_state: expected a minidl.uint8 tensor"):
        other.set_state({"state": 1})
    with pytest.raises(TypeError, match="got float32 tensor"):
        other.set_state(minidl.zeros(3))
    with pytest.raises(RuntimeError, match="expected a state of"):
        other.set_state(minidl.zeros(3, dtype=minidl.uint8))


def test_randperm(torch):
    p = minidl.randperm(10)
    assert p.dtype == minidl.int64 and sorted(p.tolist()) == list(range(10))
    assert minidl.randperm(0).shape == (0,)
    assert minidl.randperm(4, dtype=minidl.float32).dtype == minidl.float32
    with pytest.raises(RuntimeError):
        torch.randperm(-1)
    with pytest.raises(RuntimeError, match="negative dimension -1"):
        minidl.randperm(-1)
    with pytest.raises(TypeError, match="randperm: n must be an int"):
        minidl.randperm(2.5)
    minidl.manual_seed(2)
    a = minidl.randperm(20)
    minidl.manual_seed(2)
    assert minidl.randperm(20).tolist() == a.tolist()


def test_generator_is_accepted_by_like_functions_init_and_tensor_methods():
    def draws(g):
        w = minidl.empty(3, 3)
        minidl.nn.init.kaiming_uniform_(w, generator=g)
        t = minidl.empty(4).normal_(generator=g)
        u = minidl.empty(4).uniform_(generator=g)
        return [w.numpy(), t.numpy(), u.numpy(), minidl.rand_like(t, generator=g).numpy(),
                minidl.randn_like(t, generator=g).numpy()]
    for a, b in zip(draws(minidl.Generator().manual_seed(1)), draws(minidl.Generator().manual_seed(1))):
        assert np.array_equal(a, b)
    with pytest.raises(TypeError, match="generator must be a minidl.Generator, got int"):
        minidl.rand(2, generator=3)
