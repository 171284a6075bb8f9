"""How `minidl ex check conv2d_backward` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

from minidl.backend.reference import im2col

NAME = "conv2d_backward"
TITLE = "conv2d's dx, dweight, dbias with stride, padding, dilation, groups"
PREREQUISITES = ["im2col", "col2im"]
FUNCTIONS = ["conv2d_backward"]
VALUES = []


def out_size(H, K, S, P, D):
    return (H + 2 * P - D * (K - 1) - 1) // S + 1


def conv2d(x, weight, bias, c):
    """The forward (float64), whose gradients the student writes."""
    N, C, H, W = x.shape
    F, Cg, KH, KW = weight.shape
    G = c["G"]
    OH, OW = out_size(H, KH, c["SH"], c["PH"], c["DH"]), out_size(W, KW, c["SW"], c["PW"], c["DW"])
    cols = im2col(x, KH, KW, c["SH"], c["SW"], c["PH"], c["PW"], c["DH"], c["DW"]).reshape(N, G, Cg * KH * KW, OH * OW)
    y = weight.reshape(G, F // G, Cg * KH * KW) @ cols  # (N, G, F/G, P)
    return y.reshape(N, F, OH, OW) + bias.reshape(1, F, 1, 1)


GRADIENTS = {"dx": ("x", lambda i, c: conv2d(i["x"], i["weight"], i["bias"], c), "dy"),
             "dweight": ("weight", lambda i, c: conv2d(i["x"], i["weight"], i["bias"], c), "dy"),
             "dbias": ("bias", lambda i, c: conv2d(i["x"], i["weight"], i["bias"], c), "dy")}
VARIANTS = [(("SH", "SW"), 1, "only stride > 1 fails -> check the window offsets (SH*i + DH*p) in im2col/col2im's arguments"),
            (("DH", "DW"), 1, "only dilation > 1 fails -> pass the dilation to im2col and col2im"),
            (("PH", "PW"), 0, "only padding > 0 fails -> pass the padding to im2col and col2im"),
            ("G", 1, "only groups > 1 fails -> each group's filters see only its C/G channels: reshape to (N, G, ...)")]


def valid(c):
    return c["C"] % c["G"] == 0 and c["F"] % c["G"] == 0 and \
        out_size(c["H"], c["KH"], c["SH"], c["PH"], c["DH"]) >= 1 and \
        out_size(c["W"], c["KW"], c["SW"], c["PW"], c["DW"]) >= 1


def case(N=2, C=2, F=3, H=5, W=6, KH=3, KW=3, SH=1, SW=1, PH=0, PW=0, DH=1, DW=1, G=1):
    return dict(N=N, C=C, F=F, H=H, W=W, KH=KH, KW=KW, SH=SH, SW=SW, PH=PH, PW=PW, DH=DH, DW=DW, G=G)


def public_cases():
    return [case(),
            case(C=3, F=3),                          # F == C: a transposed dweight has the right shape
            case(H=7, W=7, SH=2, SW=2),
            case(PH=1, PW=2),
            case(H=7, W=8, DH=2, DW=2),
            case(C=4, F=6, G=2),
            case(N=1, C=4, F=4, H=6, W=7, KH=2, KW=3, SH=2, SW=1, PH=1, PW=0, DH=1, DW=2, G=4)]


def configs():
    from hypothesis import strategies as st
    return st.builds(case, N=st.integers(1, 3), C=st.sampled_from([1, 2, 4]), F=st.sampled_from([1, 2, 4]),
                     H=st.integers(1, 7), W=st.integers(1, 7), KH=st.integers(1, 3), KW=st.integers(1, 3),
                     SH=st.integers(1, 3), SW=st.integers(1, 3), PH=st.integers(0, 2), PW=st.integers(0, 2),
                     DH=st.integers(1, 2), DW=st.integers(1, 2), G=st.sampled_from([1, 2]))


def make(config, rng):
    c = config
    x = rng.standard_normal((c["N"], c["C"], c["H"], c["W"]))
    weight = rng.standard_normal((c["F"], c["C"] // c["G"], c["KH"], c["KW"]))
    bias = rng.standard_normal(c["F"])
    OH, OW = out_size(c["H"], c["KH"], c["SH"], c["PH"], c["DH"]), out_size(c["W"], c["KW"], c["SW"], c["PW"], c["DW"])
    dy = rng.standard_normal((c["N"], c["F"], OH, OW))
    return dict(x=x, weight=weight, bias=bias, dy=dy, config=c)


def run(module, inputs):
    c = inputs["config"]
    dx, dweight, dbias = module.conv2d_backward(inputs["x"], inputs["weight"], inputs["dy"], (c["SH"], c["SW"]),
                                                (c["PH"], c["PW"]), (c["DH"], c["DW"]), c["G"])
    return {"dx": dx, "dweight": dweight, "dbias": dbias}


def diagnose(output, got, want, inputs, config):
    if output == "dweight" and got.shape[0] == got.shape[1] and np.allclose(got, want.swapaxes(0, 1), atol=1e-9):
        return "the result is the transpose: dweight[f, c] pairs dy's channel f with x's channel c (F and C swapped)"
    return None


def overrides(student):
    """minidl's conv2d on its textbook route (minidl/ops/conv.py Conv2d) takes dx, dweight and
    dbias from your conv2d_backward when the padding is the same on both sides."""
    from minidl.ops.conv import Conv2d
    library = Conv2d.backward

    def backward(self, dy):
        s = self.saved
        if s.x is None or not s.lowering.direct:  # (x not kept, or padding differs per side)
            return library(self, dy)
        dx, dweight, dbias = student.conv2d_backward(s.x, s.weight, dy, s.lowering.stride, s.lowering.top_left,
                                                     s.lowering.dilation, s.groups)
        keep = self.needs_input_grad
        return (dx if keep[0] else None, dweight if keep[1] else None, dbias if keep[2] else None,
                None, None, None, None)
    return [(Conv2d, "backward", backward)]


CONV_ALGORITHM = "im2col"  # the route whose backward is Conv2d.backward


def engine(minidl, inputs):
    """minidl.nn.functional.conv2d forward and backward."""
    c = inputs["config"]
    x, weight, bias = (minidl.tensor(inputs[k], requires_grad=True) for k in ("x", "weight", "bias"))
    y = minidl.nn.functional.conv2d(x, weight, bias, (c["SH"], c["SW"]), (c["PH"], c["PW"]), (c["DH"], c["DW"]), c["G"])
    y.backward(minidl.tensor(inputs["dy"]))
    return {"dx": x.grad.numpy(), "dweight": weight.grad.numpy(), "dbias": bias.grad.numpy()}

MUTANTS = [
    ("dweight = (dy_g @ cols.swapaxes(-1, -2)).sum(axis=0)", "dweight = (dy_g @ cols.swapaxes(-1, -2)).mean(axis=0)",
     "off by a factor equal to the batch size"),
    ("dbias = dy.sum(axis=(0, 2, 3))", "dbias = dy.sum(axis=(2, 3)).mean(axis=0)",
     "off by a factor equal to the batch size"),
    ("return dx, dweight.reshape(weight.shape), dbias", "return dx, dweight.reshape(weight.shape).swapaxes(0, 1), dbias",
     "the result is the transpose"),
    ("dx = col2im(dcols.reshape(N, C * KH * KW, OH * OW), x.shape, KH, KW, SH, SW, PH, PW, DH, DW)",
     "dx = col2im(dcols.reshape(N, C * KH * KW, OH * OW), x.shape, KH, KW, 1, 1, PH, PW, DH, DW)",
     "only stride > 1 fails"),
    ("cols = cols.reshape(N, G, Cg * KH * KW, OH * OW)", "cols = cols.reshape(N, 1, G * Cg * KH * KW, OH * OW)[:, :, :Cg * KH * KW]",
     "only groups > 1 fails"),
]
