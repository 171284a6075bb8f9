"""minidl.gradcheck (float64, random upstream gradient) passes on every core op."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import gradcheck_with_random_dy


def _rand(shape, seed, low=None):
    a = np.random.default_rng(seed).standard_normal(shape)
    if low is not None:
        a = np.abs(a) + low
    return a


CASES = {
    # name: (function, input arrays)
    "add_broadcast": (lambda a, b: a + b, [_rand((3, 1, 5), 0), _rand((4, 1), 1)]),
    "sub_broadcast": (lambda a, b: a - b, [_rand((2, 3), 0), _rand((3,), 1)]),
    "mul_broadcast": (lambda a, b: a * b, [_rand((3, 4), 0), _rand((1, 4), 1)]),
    "div": (lambda a, b: a / b, [_rand((3, 4), 0), _rand((3, 4), 1, low=0.5)]),
    "pow_tensor": (lambda a, b: a ** b, [_rand((5,), 0, low=0.5), _rand((5,), 1)]),
    "pow_scalar": (lambda a: a ** 3, [_rand((2, 3), 0)]),
    "rpow": (lambda a: 1.7 ** a, [_rand((2, 3), 0)]),
    "neg": (lambda a: -a, [_rand((3,), 0)]),
    "exp": (lambda a: a.exp(), [_rand((3, 2), 0)]),
    "log": (lambda a: a.log(), [_rand((3, 2), 0, low=0.5)]),
    "sqrt": (lambda a: a.sqrt(), [_rand((3, 2), 0, low=0.5)]),
    "abs": (lambda a: a.abs(), [_rand((3, 2), 0, low=0.1)]),
    "clamp": (lambda a: a.clamp(-0.3, 0.4), [np.array([-1.0, -0.1, 0.2, 0.9, 0.35])]),
    "relu": (F.relu, [np.array([[-1.0, 0.5], [2.0, -0.2]])]),
    "sigmoid": (F.sigmoid, [_rand((4, 3), 0)]),
    "tanh": (F.tanh, [_rand((4, 3), 0)]),
    "matmul_batched": (lambda a, b: a @ b, [_rand((2, 3, 4), 0), _rand((4, 5), 1)]),
    "matmul_vector": (lambda a, b: a @ b, [_rand((4,), 0), _rand((2, 4, 3), 1)]),
    "linear": (F.linear, [_rand((5, 4), 0), _rand((3, 4), 1), _rand((3,), 2)]),
    "sum_dims": (lambda a: a.sum((0, 2)), [_rand((3, 4, 5), 0)]),
    "mean_keepdim": (lambda a: a.mean(1, keepdim=True), [_rand((3, 4, 5), 0)]),
    "var": (lambda a: a.var(-1), [_rand((3, 5), 0)]),
    "max_dim": (lambda a: a.max(1).values, [_rand((3, 5), 0)]),
    "min_all": (lambda a: a.min(), [_rand((3, 5), 0)]),
    "amax_tuple": (lambda a: a.amax((0, 1)), [_rand((3, 5, 2), 0)]),
    "reshape": (lambda a: a.reshape(5, 3), [_rand((3, 5), 0)]),
    "permute": (lambda a: a.permute(2, 0, 1), [_rand((2, 3, 4), 0)]),
    "expand": (lambda a: a.expand(3, 4, 5), [_rand((4, 1), 0)]),
    "getitem_slices": (lambda a: a[1:, ::2], [_rand((4, 5), 0)]),
    "getitem_repeated_ints": (lambda a: a[np.array([0, 0, 2])], [_rand((3, 2), 0)]),
    "getitem_bool": (lambda a: a[np.array([True, False, True])], [_rand((3, 2), 0)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_passes_on_core_op(name):
    fn, arrays = CASES[name]
    assert gradcheck_with_random_dy(fn, arrays, seed=len(name))
