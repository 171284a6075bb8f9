"""F.linear: the affine map of nn.Linear."""
from .. import dtypes
from ..ops import linalg
from ._checks import check_tensor as _check_tensor


def linear(input, weight, bias=None):  # noqa: A002  (PyTorch's argument name)
    """y = input @ weight^T + bias.   input (..., IN), weight (OUT, IN), bias (OUT,)."""
    _check_tensor("linear", "input", input)
    _check_tensor("linear", "weight", weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {input.shape} has {input.shape[-1] if input.ndim else 0} "
                         f"features but weight of shape {weight.shape} expects {weight.shape[1]}")
    if bias is not None:
        _check_tensor("linear", "bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},) to match weight "
                             f"{weight.shape}, got {bias.shape}")
    linalg.check_same_dtype("linear", input, weight)  # no type promotion, as in PyTorch
    if bias is not None and bias.dtype != input.dtype:
        raise RuntimeError(f"linear: self and mat2 must have the same dtype, but got "
                           f"{dtypes.torch_name(bias.dtype)} and {dtypes.torch_name(input.dtype)}")
    return linalg.Linear.apply(input, weight, bias)
