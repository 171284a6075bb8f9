"""How `minidl ex check col2im` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "col2im"
TITLE = "col2im, the adjoint of im2col (adds where windows overlap)"
PREREQUISITES = ["im2col"]
FUNCTIONS = ["col2im"]
VALUES = []


def out_size(H, K, S, P, D):
    return (H + 2 * P - D * (K - 1) - 1) // S + 1


def im2col(x, c):
    """The forward whose gradient col2im is (float64, written plainly with loops over taps)."""
    N, C, H, W = x.shape
    OH, OW = out_size(H, c["KH"], c["SH"], c["PH"], c["DH"]), out_size(W, c["KW"], c["SW"], c["PW"], c["DW"])
    xpad = np.pad(x, ((0, 0), (0, 0), (c["PH"], c["PH"]), (c["PW"], c["PW"])))
    cols = np.empty((N, C, c["KH"], c["KW"], OH, OW), dtype=x.dtype)
    for p in range(c["KH"]):
        for q in range(c["KW"]):
            for i in range(OH):
                for j in range(OW):
                    cols[:, :, p, q, i, j] = xpad[:, :, c["SH"] * i + c["DH"] * p, c["SW"] * j + c["DW"] * q]
    return cols.reshape(N, C * c["KH"] * c["KW"], OH * OW)


GRADIENTS = {"dx": ("x", lambda inputs, config: im2col(inputs["x"], config), "cols")}
VARIANTS = [(("SH", "SW"), 1, "only stride > 1 fails -> check the offsets of the windows (SH*i + DH*p, SW*j + DW*q)"),
            (("DH", "DW"), 1, "only dilation > 1 fails -> the tap offset is DH*p (DW*q), not p (q)"),
            (("PH", "PW"), 0, "only padding > 0 fails -> crop PH rows / PW columns off each side")]


def valid(c):
    return out_size(c["H"], c["KH"], c["SH"], c["PH"], c["DH"]) >= 1 and \
        out_size(c["W"], c["KW"], c["SW"], c["PW"], c["DW"]) >= 1 and c["PH"] < c["KH"] * c["DH"] and c["PW"] < c["KW"] * c["DW"]


def case(N=2, C=2, H=5, W=6, KH=3, KW=3, SH=1, SW=1, PH=0, PW=0, DH=1, DW=1):
    return dict(N=N, C=C, H=H, W=W, KH=KH, KW=KW, SH=SH, SW=SW, PH=PH, PW=PW, DH=DH, DW=DW)


def public_cases():
    return [case(KH=2, KW=2, SH=2, SW=2, H=4, W=6),        # windows side by side, no overlap
            case(),                                        # 3x3, stride 1: overlaps
            case(H=7, W=7, SH=2, SW=2),                    # stride 2, overlapping by one
            case(H=7, W=8, SH=2, SW=3, KH=2, KW=3),        # asymmetric strides
            case(PH=1, PW=2),                              # padding
            case(H=7, W=7, DH=2, DW=2),                    # dilation
            case(N=1, C=1, H=6, W=5, KH=3, KW=2, SH=2, SW=1, PH=1, PW=0, DH=2, DW=1)]


def configs():
    from hypothesis import strategies as st
    small = st.integers(1, 3)
    return st.builds(case, N=st.integers(1, 2), C=st.integers(1, 2), H=st.integers(1, 7), W=st.integers(1, 7),
                     KH=small, KW=small, SH=small, SW=small, PH=st.integers(0, 2), PW=st.integers(0, 2),
                     DH=st.integers(1, 2), DW=st.integers(1, 2))


def make(config, rng):
    c = config
    x = rng.standard_normal((c["N"], c["C"], c["H"], c["W"]))
    OH, OW = out_size(c["H"], c["KH"], c["SH"], c["PH"], c["DH"]), out_size(c["W"], c["KW"], c["SW"], c["PW"], c["DW"])
    cols = rng.standard_normal((c["N"], c["C"] * c["KH"] * c["KW"], OH * OW))
    return dict(x=x, cols=cols, config=c)


def run(module, inputs):
    c = inputs["config"]
    x_shape = (c["N"], c["C"], c["H"], c["W"])
    return {"dx": module.col2im(inputs["cols"], x_shape, c["KH"], c["KW"], c["SH"], c["SW"], c["PH"], c["PW"],
                                c["DH"], c["DW"])}


def diagnose(output, got, want, inputs, config):
    """Errors only where windows overlap -> col2im must add."""
    c = config
    overlap = _fold_count(c)  # (N, C, H, W): copies of each pixel
    wrong = np.abs(got - want) > 1e-9
    if wrong.any() and np.all(overlap[wrong] > 1) and np.any(overlap > 1):
        return "errors only where windows overlap -> col2im must ADD the copies (+=), not assign (=)"
    return None


def _fold_count(c):
    """How many window entries fold onto each pixel (a plain loop: the count map)."""
    N, C, H, W = c["N"], c["C"], c["H"], c["W"]
    OH, OW = out_size(H, c["KH"], c["SH"], c["PH"], c["DH"]), out_size(W, c["KW"], c["SW"], c["PW"], c["DW"])
    count = np.zeros((N, C, H, W))
    for p in range(c["KH"]):
        for q in range(c["KW"]):
            for i in range(OH):
                for j in range(OW):
                    h, w = c["SH"] * i + c["DH"] * p - c["PH"], c["SW"] * j + c["DW"] * q - c["PW"]
                    if 0 <= h < H and 0 <= w < W:
                        count[:, :, h, w] += 1
    return count


def engine(minidl, inputs):
    """minidl's conv2d (textbook route) forward and backward; its dx comes from col2im."""
    c = inputs["config"]
    x = minidl.tensor(inputs["x"], requires_grad=True)
    weight = minidl.tensor(np.random.default_rng(1).standard_normal((2, c["C"], c["KH"], c["KW"])))
    y = minidl.nn.functional.conv2d(x, weight, stride=(c["SH"], c["SW"]), padding=(c["PH"], c["PW"]),
                                    dilation=(c["DH"], c["DW"]))
    y.backward(minidl.tensor(np.random.default_rng(2).standard_normal(tuple(y.shape))))
    return {"dx": x.grad.numpy()}


# Module functions the student's solution replaces in minidl after `minidl ex start col2im`.
OVERRIDES = [("minidl.backend.reference", "col2im"), ("minidl.backend.numba_cpu", "col2im")]
CONV_ALGORITHM = "im2col"  # conv2d calls col2im on its textbook route only

MUTANTS = [
    ("dxpad[:, :, rows, columns] += cols[:, :, p, q]", "dxpad[:, :, rows, columns] = cols[:, :, p, q]",
     "errors only where windows overlap"),
    ("rows = slice(DH * p, DH * p + SH * (OH - 1) + 1, SH)", "rows = slice(SH * p, SH * p + SH * (OH - 1) + 1, SH)",
     "only stride > 1 fails"),
    ("columns = slice(DW * q, DW * q + SW * (OW - 1) + 1, SW)", "columns = slice(q, q + SW * (OW - 1) + 1, SW)",
     "only dilation > 1 fails"),
    ("return dxpad[:, :, PH:PH + H, PW:PW + W].copy()", "return dxpad[:, :, :H, :W].copy()",
     "only padding > 0 fails"),
]
