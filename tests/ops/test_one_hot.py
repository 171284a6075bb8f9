"""F.one_hot (minidl/functional/one_hot.py) against PyTorch and by its definition."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import hypothesis.extra.numpy as hnp

import minidl
import minidl.nn.functional as F


@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4), extra=st.integers(-1, 3),
       seed=st.integers(0, 999))
def test_one_hot_matches_torch(torch, shape, extra, seed):
    a = np.random.default_rng(seed).integers(0, 5, size=shape)
    num_classes = -1 if extra == -1 else int(a.max()) + 1 + extra
    y = F.one_hot(minidl.tensor(a), num_classes)
    expected = torch.nn.functional.one_hot(torch.tensor(a), num_classes).numpy()
    assert y.dtype == minidl.int64 and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), expected)
    k = expected.shape[-1]
    np.testing.assert_array_equal(y.numpy(), (a[..., None] == np.arange(k)).astype(np.int64))  # the definition


def test_one_hot_empty(torch):
    y = F.one_hot(minidl.zeros(0, dtype=minidl.int64), 3)
    assert y.shape == tuple(torch.nn.functional.one_hot(torch.zeros(0, dtype=torch.long), 3).shape) == (0, 3)


def test_one_hot_errors(torch):
    TF = torch.nn.functional
    cases = [
        (lambda m: m.tensor([0, 2], dtype=m.int32), -1, RuntimeError,
         "one_hot is only applicable to index tensor of type LongTensor"),
        (lambda m: m.tensor([0.0, 2.0]), -1, RuntimeError, "one_hot is only applicable to index tensor of type"),
        (lambda m: m.tensor([0, -1]), -1, RuntimeError, "Class values must be non-negative."),
        (lambda m: m.tensor([0, 3]), 3, RuntimeError, "Class values must be smaller than num_classes"),
        (lambda m: m.tensor([0, 1]), -2, RuntimeError, "Class values must be smaller than num_classes"),
        (lambda m: m.zeros(0, dtype=m.int64), -1, RuntimeError,
         "Can not infer total number of classes from empty tensor."),
        (lambda m: m.zeros(2, 0, dtype=m.int64), 0, RuntimeError, "Can not infer total number of classes"),
        (lambda m: m.tensor([0, 1]), 2.0, TypeError, "argument 'num_classes'.* must be int, not float"),
        (lambda m: m.tensor([0, 1]), True, TypeError, "argument 'num_classes'.* must be int, not bool"),
    ]
    for make, num_classes, error, message in cases:
        with pytest.raises(error, match=message):
            F.one_hot(make(minidl), num_classes)
        with pytest.raises(error, match=message):
            TF.one_hot(make(torch), num_classes)
    with pytest.raises(TypeError, match="one_hot: tensor must be a minidl Tensor"):
        F.one_hot(np.array([0, 1]))
