"""F.linear backward: dx, dweight, dbias (the reference solution)."""
import numpy as np  # noqa: F401  (for your solution)


def linear_backward(x, weight, dy):
    """x (N, IN) or (B, N, IN), weight (OUT, IN), dy (N, OUT) or (B, N, OUT) -> dx, dweight, dbias."""
    OUT, IN = weight.shape
    dx = dy @ weight  # (..., N, IN): (N, OUT) @ (OUT, IN) for every leading index
    products = dy.swapaxes(-1, -2) @ x  # (..., OUT, IN): dy^T @ x, each a sum over its N rows
    dweight = products.reshape(-1, OUT, IN).sum(axis=0)  # (OUT, IN): summed over the leading dims too
    dbias = dy.reshape(-1, OUT).sum(axis=0)  # (OUT,): bias was added to every row of every batch entry
    return dx, dweight, dbias
