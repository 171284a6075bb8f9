"""F.one_hot: class indices to one-hot vectors (no gradient: integers in, integers out)."""
import numbers

from .. import dtypes
from ..backend import array_module
from ..tensor import Tensor
from ._checks import check_tensor as _check_tensor


def one_hot(tensor, num_classes=-1):
    """``tensor`` of int64 class indices, shape (*), to int64 of shape (*, num_classes):
    ``y[..., k] = 1 if tensor[...] == k else 0``.

    ``num_classes=-1`` takes ``tensor.max() + 1``. As in PyTorch: indices must be int64,
    non-negative and smaller than ``num_classes``; an empty ``tensor`` needs ``num_classes > 0``.
    """
    _check_tensor("one_hot", "tensor", tensor)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"one_hot: argument 'num_classes' must be int, not {type(num_classes).__name__}")
    num_classes = int(num_classes)
    if tensor.dtype != dtypes.int64:
        raise RuntimeError(f"one_hot: one_hot is only applicable to index tensor of type LongTensor "
                           f"(got dtype {dtypes.torch_name(tensor.dtype)}).")
    x = tensor._data
    xp = array_module(x)
    if x.size == 0:
        if num_classes <= 0:
            raise RuntimeError("one_hot: Can not infer total number of classes from empty tensor.")
    else:
        if int(x.min().item()) < 0:  # one trip to the host for the check, as PyTorch's
            raise RuntimeError("one_hot: Class values must be non-negative.")
        largest = int(x.max().item())
        if num_classes == -1:
            num_classes = largest + 1
        elif largest >= num_classes:
            raise RuntimeError(f"one_hot: Class values must be smaller than num_classes (got the class "
                               f"{largest} and num_classes={num_classes}).")
    classes = xp.arange(num_classes, dtype=x.dtype)  # (num_classes,)
    return Tensor((x[..., None] == classes).astype(dtypes.int64))  # (*, 1) == (num_classes,) -> (*, num_classes)
