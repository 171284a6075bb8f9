"""unet/seed_sizes.py: the size rule of the seed models against brute force."""
import pytest

from unet.planner import SizeError
from unet.seed_sizes import SizeRule


def _brute_output(n, levels, shrink, pool):
    """Walk the U step by step; None when a size drops below 1 or a pool sees a remainder."""
    size = n
    for _ in range(levels - 1):
        size -= shrink
        if size < 1 or size % pool:
            return None
        size //= pool
    size -= shrink
    for _ in range(levels - 1):
        if size < 1:
            return None
        size = pool * size - shrink
    return size if size >= 1 else None


@pytest.mark.parametrize("levels, shrink", [(1, 0), (3, 0), (5, 0), (3, 4), (2, 8), (4, 4)])
def test_rule_agrees_with_brute_force(levels, shrink):
    rule = SizeRule("M", levels, shrink)
    fits = [n for n in range(1, 400) if _brute_output(n, levels, shrink, 2) is not None]
    for n in range(1, 300):
        expected = _brute_output(n, levels, shrink, 2)
        if expected is not None:
            assert rule.output_size(n) == expected
            assert rule.valid_input_size(n) == n
            continue
        above = next(m for m in fits if m >= n)
        below = [m for m in fits if m < n]
        assert rule.valid_input_size(n) == above
        nearest = (f"the nearest sizes it takes are {below[-1]} and {above}" if below
                   else f"the smallest size it takes is {above}")
        with pytest.raises(SizeError, match=nearest):
            rule.output_size(n)


def test_pairs_and_errors():
    rule = SizeRule("M", 3, 4)
    assert rule.output_size((44, 48)) == (4, 8)
    assert rule.valid_input_size((1, 45)) == (44, 48)
    with pytest.raises(SizeError, match="M cannot take an input width of 45"):
        rule.output_size((44, 45))
    with pytest.raises(ValueError, match="pair"):
        rule.output_size((44, 44, 44))
    with pytest.raises(TypeError, match="must be an int"):
        rule.output_size(44.0)
    with pytest.raises(ValueError, match="min_size must be a positive int"):
        rule.valid_input_size(0)
