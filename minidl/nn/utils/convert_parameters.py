r"""All parameters as one flat vector and back, as ``torch.nn.utils.parameters_to_vector``."""
from ...functional.shape import cat
from ...tensor import Tensor


def parameters_to_vector(parameters):
    r"""``cat([p.view(-1) for p in parameters])``: shape ``(sum of p.numel(),)``; differentiable."""
    return cat([p.reshape(-1) for p in parameters])  # (P,)


def vector_to_parameters(vec, parameters):
    r"""Make each parameter the next ``p.numel()`` entries of ``vec``, reshaped (as PyTorch: each
    ``p.data`` becomes a view of ``vec``'s memory)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected minidl.Tensor, but got: {type(vec).__name__}")
    parameters = list(parameters)
    needed = sum(p.numel() for p in parameters)
    if vec.dim() != 1 or vec.numel() < needed:
        raise RuntimeError(f"vector_to_parameters: vec must be 1-D with at least {needed} entries "
                           f"(the parameters' sizes), got shape {tuple(vec.shape)}")
    start = 0
    for p in parameters:
        n = p.numel()
        p.data = vec[start:start + n].detach().view_as(p)  # (p's shape)
        start += n
