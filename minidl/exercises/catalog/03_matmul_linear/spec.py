"""How `minidl ex check matmul_linear` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "matmul_linear"
TITLE = "F.linear's dx, dweight, dbias, with leading batch dimensions"
PREREQUISITES = ["sum_to_shape"]
FUNCTIONS = ["linear_backward"]
VALUES = []


def linear(inputs, config):
    """The forward (float64), whose gradients the student writes: y = x @ weight^T + bias."""
    return inputs["x"] @ inputs["weight"].T + inputs["bias"]


GRADIENTS = {"dx": ("x", linear, "dy"), "dweight": ("weight", linear, "dy"), "dbias": ("bias", linear, "dy")}
VARIANTS = [("B", None, "only 3-d x fails -> dweight and dbias sum over EVERY leading dimension (B and N): "
                        "every row of every batch entry used the same weight and bias")]


def valid(c):
    return True


def case(B=None, N=3, IN=4, OUT=4):
    """x (N, IN) when B is None, else (B, N, IN)."""
    return dict(B=B, N=N, IN=IN, OUT=OUT)


def public_cases():
    # IN == OUT in every public case, so that a missing (or extra) transpose has the right shape and
    # is diagnosed as such; the generated cases (hypothesis) have IN != OUT.
    return [case(),
            case(N=1, IN=3, OUT=3),                 # one row
            case(B=2, N=3),                         # 3-d x: sums over B and N
            case(B=3, N=5, IN=7, OUT=7),            # odd sizes
            case(B=1, N=1, IN=2, OUT=2)]


def configs():
    from hypothesis import strategies as st
    return st.builds(case, B=st.sampled_from([None, 1, 2, 3]), N=st.integers(1, 4), IN=st.integers(1, 5),
                     OUT=st.integers(1, 5))


def make(config, rng):
    c = config
    lead = (c["N"],) if c["B"] is None else (c["B"], c["N"])
    x = rng.standard_normal(lead + (c["IN"],))
    weight = rng.standard_normal((c["OUT"], c["IN"]))
    bias = rng.standard_normal(c["OUT"])
    dy = rng.standard_normal(lead + (c["OUT"],))
    return dict(x=x, weight=weight, bias=bias, dy=dy, config=c)


def run(module, inputs):
    dx, dweight, dbias = module.linear_backward(inputs["x"], inputs["weight"], inputs["dy"])
    return {"dx": dx, "dweight": dweight, "dbias": dbias}


def diagnose(output, got, want, inputs, config):
    weight, dy = inputs["weight"], inputs["dy"]
    if output == "dx" and weight.shape[0] == weight.shape[1] and np.allclose(got, dy @ weight.T, atol=1e-9):
        return ("the result is the transposed weight's product: dx = dy @ weight.T, but y = x @ weight.T "
                "gives dx = dy @ weight ((N, OUT) @ (OUT, IN))")
    return None


SPECIAL_FIRST = True


def overrides(student):
    """minidl's F.linear (minidl.ops.linalg.Linear) calls the student's backward on what it saved."""
    from minidl.ops.linalg import Linear

    def backward(self, dy):
        x, weight = self.saved.x, self.saved.weight
        if x.ndim not in (2, 3):  # (IN,) or 4-d: hand over rows (R, IN), as the README promises 2-d or 3-d
            dx, dweight, dbias = student.linear_backward(x.reshape(-1, x.shape[-1]), weight,
                                                         dy.reshape(-1, dy.shape[-1]))  # (R, IN), (R, OUT)
            dx = dx.reshape(x.shape)
        else:
            dx, dweight, dbias = student.linear_backward(x, weight, dy)
        needs_x, needs_w, needs_b = self.needs_input_grad
        return dx if needs_x else None, dweight if needs_w else None, dbias if needs_b else None
    return [(Linear, "backward", backward)]


def engine(minidl, inputs):
    """minidl.nn.functional.linear forward and autograd backward: dx, dweight, dbias."""
    x = minidl.tensor(inputs["x"], requires_grad=True)
    weight = minidl.tensor(inputs["weight"], requires_grad=True)
    bias = minidl.tensor(inputs["bias"], requires_grad=True)
    y = minidl.nn.functional.linear(x, weight, bias)
    y.backward(minidl.tensor(inputs["dy"]))
    return {"dx": x.grad.numpy(), "dweight": weight.grad.numpy(), "dbias": bias.grad.numpy()}


MUTANTS = [
    ("dx = dy @ weight  # (..., N, IN): (N, OUT) @ (OUT, IN) for every leading index",
     "dx = dy @ weight.T", "the result is the transpose"),
    ("products = dy.swapaxes(-1, -2) @ x  # (..., OUT, IN): dy^T @ x, each a sum over its N rows",
     "products = x.swapaxes(-1, -2) @ dy", "the result is the transpose"),
    ("dbias = dy.reshape(-1, OUT).sum(axis=0)  # (OUT,): bias was added to every row of every batch entry",
     "dbias = dy.reshape(-1, OUT).mean(axis=0)", "off by a factor equal to the batch size"),
    ("dweight = products.reshape(-1, OUT, IN).sum(axis=0)  # (OUT, IN): summed over the leading dims too",
     "dweight = products.reshape(-1, OUT, IN)[-1]", "only 3-d x fails"),
    ("dx = dy @ weight  # (..., N, IN): (N, OUT) @ (OUT, IN) for every leading index",
     "dx = -(dy @ weight)", "wrong sign"),
]
