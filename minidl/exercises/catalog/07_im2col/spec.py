"""How `minidl ex check im2col` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "im2col"
TITLE = "im2col, every convolution window as one column (stride, padding, dilation)"
PREREQUISITES = []
FUNCTIONS = ["im2col"]
VALUES = ["cols"]
GRADIENTS = {}  # a copy, linear in x: its adjoint is the exercise col2im
VARIANTS = [(("SH", "SW"), 1, "only stride > 1 fails -> check the offsets of the windows (SH*i + DH*p, SW*j + DW*q)"),
            (("DH", "DW"), 1, "only dilation > 1 fails -> the tap offset is DH*p (DW*q), not p (q)"),
            (("PH", "PW"), 0, "only padding > 0 fails -> pad PH zero rows above AND below, PW zero columns left AND right")]
SPECIAL_FIRST = True  # a permutation of the rows is an exact pattern


def out_size(H, K, S, P, D):
    return (H + 2 * P - D * (K - 1) - 1) // S + 1


def valid(c):
    return out_size(c["H"], c["KH"], c["SH"], c["PH"], c["DH"]) >= 1 and \
        out_size(c["W"], c["KW"], c["SW"], c["PW"], c["DW"]) >= 1 and c["PH"] < c["KH"] * c["DH"] and c["PW"] < c["KW"] * c["DW"]


def case(N=2, C=2, H=5, W=6, KH=3, KW=3, SH=1, SW=1, PH=0, PW=0, DH=1, DW=1):
    return dict(N=N, C=C, H=H, W=W, KH=KH, KW=KW, SH=SH, SW=SW, PH=PH, PW=PW, DH=DH, DW=DW)


def public_cases():
    return [case(KH=2, KW=2, SH=2, SW=2, H=4, W=6),        # windows side by side, no overlap
            case(),                                        # 3x3, stride 1: overlaps
            case(H=7, W=7, SH=2, SW=2),                    # stride 2, overlapping by one
            case(H=7, W=8, SH=2, SW=3, KH=2, KW=3),        # asymmetric strides and kernel
            case(PH=1, PW=2),                              # padding
            case(H=7, W=7, DH=2, DW=2),                    # dilation
            case(N=1, C=3, H=6, W=5, KH=3, KW=2, SH=2, SW=1, PH=1, PW=0, DH=2, DW=1)]  # asymmetric everything


def configs():
    from hypothesis import strategies as st
    small = st.integers(1, 3)
    return st.builds(case, N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
                     KH=small, KW=small, SH=small, SW=small, PH=st.integers(0, 2), PW=st.integers(0, 2),
                     DH=st.integers(1, 2), DW=st.integers(1, 2))


def make(config, rng):
    c = config
    return dict(x=rng.standard_normal((c["N"], c["C"], c["H"], c["W"])), config=c)


def run(module, inputs):
    c = inputs["config"]
    return {"cols": module.im2col(inputs["x"], c["KH"], c["KW"], c["SH"], c["SW"], c["PH"], c["PW"], c["DH"], c["DW"])}


def _sorted_rows(cols):
    """cols (N, K, P) -> its K rows (each over all samples and windows) in lexicographic order."""
    rows = cols.transpose(1, 0, 2).reshape(cols.shape[1], -1)  # (K, N*P)
    return rows[np.lexsort(rows.T[::-1])]


def diagnose(output, got, want, inputs, config):
    """The right values in the wrong rows: the taps are not in the order (c, p, q)."""
    if output != "cols" or got.ndim != 3 or np.allclose(got, want, atol=1e-12):
        return None
    if not np.allclose(_sorted_rows(got), _sorted_rows(want), atol=1e-12):
        return None
    N, C, KH, KW = config["N"], config["C"], config["KH"], config["KW"]
    qp = want.reshape(N, C, KH, KW, -1).swapaxes(2, 3).reshape(want.shape)  # rows (c, q, p), p fastest
    if np.allclose(got, qp, atol=1e-12):
        return ("the rows of cols are in the wrong order: yours are (c, q, p) with p fastest; they must be "
                "(c, p, q) with q fastest, row (c*KH + p)*KW + q (the order of weight.reshape(F, C*KH*KW))")
    return ("the rows of cols are in the wrong order (every value is right): they must be (c, p, q) with q "
            "fastest, row (c*KH + p)*KW + q (the order of weight.reshape(F, C*KH*KW))")


def engine(minidl, inputs):
    """minidl's conv2d (textbook route) forward and backward: y and dweight come from im2col."""
    c = inputs["config"]
    x = minidl.tensor(inputs["x"], requires_grad=True)
    weight = minidl.tensor(np.random.default_rng(1).standard_normal((2, c["C"], c["KH"], c["KW"])), requires_grad=True)
    y = minidl.nn.functional.conv2d(x, weight, stride=(c["SH"], c["SW"]), padding=(c["PH"], c["PW"]),
                                    dilation=(c["DH"], c["DW"]))
    y.backward(minidl.tensor(np.random.default_rng(2).standard_normal(tuple(y.shape))))
    return {"y": y.detach().numpy(), "dweight": weight.grad.numpy()}


# Module functions the student's solution replaces in minidl after `minidl ex start im2col`
# (both kernel modules' im2col have this signature; conv2d's Lowering calls kern.im2col).
OVERRIDES = [("minidl.backend.reference", "im2col"), ("minidl.backend.numba_cpu", "im2col")]
CONV_ALGORITHM = "im2col"  # conv2d calls im2col on its textbook route only

MUTANTS = [
    ("rows = slice(DH * p, DH * p + SH * (OH - 1) + 1, SH)  # row of tap p in every window",
     "rows = slice(SH * p, SH * p + SH * (OH - 1) + 1, SH)", "only stride > 1 fails"),
    ("columns = slice(DW * q, DW * q + SW * (OW - 1) + 1, SW)", "columns = slice(q, q + SW * (OW - 1) + 1, SW)",
     "only dilation > 1 fails"),
    ("xpad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))", "xpad = np.pad(x, ((0, 0), (0, 0), (2 * PH, 0), (2 * PW, 0)))",
     "only padding > 0 fails"),
    ("xpad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))", "xpad = x", "only padding > 0 fails"),
    ("return cols.reshape(N, C * KH * KW, OH * OW)", "return cols.swapaxes(2, 3).reshape(N, C * KH * KW, OH * OW)",
     "the rows of cols are in the wrong order"),
]
