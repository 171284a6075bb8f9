"""How `minidl ex check maxpool2d` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "maxpool2d"
TITLE = "max_pool2d forward with argmax, and its backward (ties, overlapping windows)"
PREREQUISITES = ["col2im"]
FUNCTIONS = ["maxpool2d_forward", "maxpool2d_backward"]
VALUES = ["y", "argmax"]
REFERENCE = None  # set by the grader to the reference module


def out_size(H, K, S, P):
    return (H + 2 * P - K) // S + 1


def _forward(inputs, c):
    return REFERENCE.maxpool2d_forward(inputs["x"], c["KH"], c["KW"], c["SH"], c["SW"], c["PH"], c["PW"])[0]


GRADIENTS = {"dx": ("x", _forward, "dy")}
VARIANTS = [(("SH", "SW"), 1, "only stride > 1 fails -> the window (i, j) starts at row SH*i, column SW*j"),
            (("PH", "PW"), 0, "only padding > 0 fails -> subtract PH / PW to get back to x's rows and columns"),
            ("ties", False, "only ties fail -> the FIRST largest in row-major window order wins")]


def gradcheckable(c):
    """Finite differences need a unique max in every window: no ties."""
    return not c["ties"]


def valid(c):
    return 2 * c["PH"] <= c["KH"] and 2 * c["PW"] <= c["KW"] and \
        out_size(c["H"], c["KH"], c["SH"], c["PH"]) >= 1 and out_size(c["W"], c["KW"], c["SW"], c["PW"]) >= 1


def case(N=2, C=2, H=5, W=6, KH=2, KW=2, SH=2, SW=2, PH=0, PW=0, ties=False):
    return dict(N=N, C=C, H=H, W=W, KH=KH, KW=KW, SH=SH, SW=SW, PH=PH, PW=PW, ties=ties)


def public_cases():
    return [case(),                                   # 2x2 stride 2: no overlap
            case(KH=3, KW=3, SH=1, SW=1),             # overlapping windows
            case(H=7, W=7, KH=3, KW=3),               # stride 2, overlapping by one
            case(KH=3, KW=3, PH=1, PW=1, SH=2, SW=1),
            case(KH=3, KW=2, SH=1, SW=2, ties=True),  # ties
            case(N=1, C=1, H=4, W=3, KH=2, KW=3, SH=1, SW=1, PW=1)]


def configs():
    from hypothesis import strategies as st
    return st.builds(case, N=st.integers(1, 2), C=st.integers(1, 2), H=st.integers(1, 7), W=st.integers(1, 7),
                     KH=st.integers(1, 3), KW=st.integers(1, 3), SH=st.integers(1, 3), SW=st.integers(1, 3),
                     PH=st.integers(0, 1), PW=st.integers(0, 1), ties=st.booleans())


def make(config, rng):
    c = config
    shape = (c["N"], c["C"], c["H"], c["W"])
    if c["ties"]:
        x = rng.integers(0, 3, shape).astype(np.float64)  # many equal values
    else:
        x = rng.permutation(np.prod(shape)).reshape(shape) * 0.5 + rng.uniform(0, 0.1, shape)  # distinct, 0.4 apart
    OH, OW = out_size(c["H"], c["KH"], c["SH"], c["PH"]), out_size(c["W"], c["KW"], c["SW"], c["PW"])
    return dict(x=x, dy=rng.standard_normal((c["N"], c["C"], OH, OW)), config=c)


def run(module, inputs):
    c = inputs["config"]
    y, argmax = module.maxpool2d_forward(inputs["x"], c["KH"], c["KW"], c["SH"], c["SW"], c["PH"], c["PW"])
    dx = module.maxpool2d_backward(inputs["dy"], np.asarray(argmax), inputs["x"].shape)
    return {"y": y, "argmax": argmax, "dx": dx}


def diagnose(output, got, want, inputs, config):
    if output == "dx":
        argmax = REFERENCE.maxpool2d_forward(inputs["x"], *(config[k] for k in ("KH", "KW", "SH", "SW", "PH", "PW")))[1]
        hits = np.zeros(got.shape).reshape(got.shape[0], got.shape[1], -1)
        for n in range(got.shape[0]):
            for c in range(got.shape[1]):
                np.add.at(hits[n, c], argmax[n, c].ravel(), 1)
        hits = hits.reshape(got.shape)
        wrong = np.abs(got - want) > 1e-9
        if wrong.any() and np.all(hits[wrong] > 1):
            return ("errors only at pixels that are the max of several (overlapping) windows -> add their dy "
                    "(+= / np.add.at), a fancy-index `=` keeps only one")
    if output == "argmax" and config["ties"]:
        x = inputs["x"].reshape(got.shape[0], got.shape[1], -1)
        g = np.take_along_axis(x, got.astype(np.int64).reshape(x.shape[0], x.shape[1], -1), axis=-1)
        w = np.take_along_axis(x, want.astype(np.int64).reshape(x.shape[0], x.shape[1], -1), axis=-1)
        if np.array_equal(g, w):
            return "ties: your argmax picks another of the equal maxima -> the FIRST largest in row-major window order wins"
    return None


SPECIAL_FIRST = True
def overrides(student):
    """minidl's max_pool2d (minidl/ops/pool.py) finds the winners with your maxpool2d_forward
    (dilation 1, floor mode: the cases your function covers; others keep the library's kernel)
    and scatters the gradient with your maxpool2d_backward."""
    from minidl.ops import pool
    library = pool.window_max

    def window_max(x, kernel_size, stride, padding, dilation, output_size):
        (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
        H, W = x.shape[2:]
        floor_size = ((H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1)
        if tuple(dilation) != (1, 1) or tuple(output_size) != floor_size:
            return library(x, kernel_size, stride, padding, dilation, output_size)
        y, argmax = student.maxpool2d_forward(x, KH, KW, SH, SW, PH, PW)
        return y, np.asarray(argmax, dtype=np.int64)

    def backward(self, dy):
        return student.maxpool2d_backward(dy, self.saved.argmax, self.saved.x_shape), None, None
    return [(pool, "window_max", window_max), (pool.MaxPool2d, "backward", backward)]


def engine(minidl, inputs):
    """minidl.nn.functional.max_pool2d (with its indices) forward and backward."""
    c = inputs["config"]
    x = minidl.tensor(inputs["x"], requires_grad=True)
    y, indices = minidl.nn.functional.max_pool2d(x, (c["KH"], c["KW"]), (c["SH"], c["SW"]), (c["PH"], c["PW"]),
                                                 return_indices=True)
    y.backward(minidl.tensor(inputs["dy"]))
    return {"y": y.detach().numpy(), "argmax": indices.numpy(), "dx": x.grad.numpy()}

MUTANTS = [
    ("np.add.at(dx, (plane, argmax.reshape(-1)), dy.reshape(-1))", "dx[plane, argmax.reshape(-1)] = dy.reshape(-1)",
     "errors only at pixels that are the max of several"),
    ("rows = SH * np.arange(OH)[:, None] + k // KW - PH", "rows = np.arange(OH)[:, None] + k // KW - PH",
     "only stride > 1 fails"),
    ("k = windows.argmax(axis=-1)", "k = KH * KW - 1 - windows[..., ::-1].argmax(axis=-1)", "ties"),
    ("cols = SW * np.arange(OW) + k % KW - PW", "cols = SW * np.arange(OW) + k % KW", "only padding > 0 fails"),
]
