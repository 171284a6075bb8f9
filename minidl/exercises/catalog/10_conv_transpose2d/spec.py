"""How `minidl ex check conv_transpose2d` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "conv_transpose2d"
TITLE = "conv_transpose2d forward and backward, the adjoint of conv2d (output_padding, groups, dilation)"
PREREQUISITES = ["col2im", "im2col"]
FUNCTIONS = ["conv_transpose2d", "conv_transpose2d_backward"]
VALUES = ["y"]
SPECIAL_FIRST = True  # the diagnoses below compare with exact alternatives


def out_size(H, K, S, P, OP, D):
    return (H - 1) * S - 2 * P + D * (K - 1) + OP + 1


def conv_transpose2d(x, weight, c):
    """The forward (float64), written plainly: every input pixel stamps its weighted kernel."""
    N, C, H, W = x.shape
    _, Fg, KH, KW = weight.shape
    Cg = C // c["G"]
    OH, OW = (out_size(H, KH, c["SH"], c["PH"], c["OPH"], c["DH"]), out_size(W, KW, c["SW"], c["PW"], c["OPW"], c["DW"]))
    ypad = np.zeros((N, Fg * c["G"], OH + 2 * c["PH"], OW + 2 * c["PW"]))  # y before cutting the padding
    for ch in range(C):
        f = slice(ch // Cg * Fg, (ch // Cg + 1) * Fg)  # the output channels of ch's group
        for p in range(KH):
            for q in range(KW):
                rows = slice(c["DH"] * p, c["DH"] * p + c["SH"] * (H - 1) + 1, c["SH"])
                columns = slice(c["DW"] * q, c["DW"] * q + c["SW"] * (W - 1) + 1, c["SW"])
                ypad[:, f, rows, columns] += x[:, ch, None] * weight[ch, :, p, q, None, None]
    return ypad[:, :, c["PH"]:c["PH"] + OH, c["PW"]:c["PW"] + OW]


GRADIENTS = {"dx": ("x", lambda i, c: conv_transpose2d(i["x"], i["weight"], c), "dy"),
             "dweight": ("weight", lambda i, c: conv_transpose2d(i["x"], i["weight"], c), "dy")}
VARIANTS = [(("OPH", "OPW"), 0, "only output_padding > 0 fails -> the output_padding rows/columns are not zeros: where "
             "padding > 0 the stamps reach into them; give col2im the full (OH, OW)"),
            (("SH", "SW"), 1, "only stride > 1 fails -> pass the stride to col2im and im2col (pixel (i, j) stamps at (SH*i, SW*j))"),
            (("DH", "DW"), 1, "only dilation > 1 fails -> pass the dilation to col2im and im2col"),
            (("PH", "PW"), 0, "only padding > 0 fails -> pass the padding to col2im and im2col (PH rows cut from each border)"),
            ("G", 1, "only groups > 1 fails -> group g's C/G input channels stamp only its F/G output channels: "
             "reshape x to (N, G, C/G, L) and weight to (G, C/G, Kt/G)")]


def valid(c):
    return c["C"] % c["G"] == 0 and c["F"] % c["G"] == 0 and c["OPH"] < c["SH"] and c["OPW"] < c["SW"] and \
        out_size(c["H"], c["KH"], c["SH"], c["PH"], c["OPH"], c["DH"]) >= 1 and \
        out_size(c["W"], c["KW"], c["SW"], c["PW"], c["OPW"], c["DW"]) >= 1


def case(N=2, C=2, F=3, H=3, W=4, KH=3, KW=3, SH=1, SW=1, PH=0, PW=0, OPH=0, OPW=0, DH=1, DW=1, G=1):
    return dict(N=N, C=C, F=F, H=H, W=W, KH=KH, KW=KW, SH=SH, SW=SW, PH=PH, PW=PW, OPH=OPH, OPW=OPW, DH=DH, DW=DW, G=G)


def public_cases():
    return [case(KH=2, KW=2, SH=2, SW=2),                          # U-Net's up-convolution: stamps tile y
            case(SH=2, SW=2, PH=1, PW=1, OPH=1, OPW=1),             # kernel 3, stride 2, padding 1, output_padding 1
            case(),                                                # stride 1: stamps overlap
            case(C=4, F=6, G=2, SH=2, SW=1),                        # groups
            case(H=4, W=3, DH=2, DW=2, PH=1, PW=2),                 # dilation and padding
            case(C=3, F=3, H=5, W=5, SH=2, SW=2, PH=1, PW=1),       # C_in == C_out: a transposed weight fits
            case(N=1, C=4, F=2, G=2, H=3, W=5, KH=3, KW=2, SH=2, SW=3, PH=1, PW=0, OPH=1, OPW=2, DH=1, DW=2)]


def configs():
    from hypothesis import strategies as st
    return st.builds(case, N=st.integers(1, 3), C=st.sampled_from([1, 2, 4]), F=st.sampled_from([1, 2, 4]),
                     H=st.integers(1, 5), W=st.integers(1, 5), KH=st.integers(1, 3), KW=st.integers(1, 3),
                     SH=st.integers(1, 3), SW=st.integers(1, 3), PH=st.integers(0, 2), PW=st.integers(0, 2),
                     OPH=st.integers(0, 2), OPW=st.integers(0, 2), DH=st.integers(1, 2), DW=st.integers(1, 2),
                     G=st.sampled_from([1, 2]))


def make(config, rng):
    c = config
    x = rng.standard_normal((c["N"], c["C"], c["H"], c["W"]))
    weight = rng.standard_normal((c["C"], c["F"] // c["G"], c["KH"], c["KW"]))
    OH = out_size(c["H"], c["KH"], c["SH"], c["PH"], c["OPH"], c["DH"])
    OW = out_size(c["W"], c["KW"], c["SW"], c["PW"], c["OPW"], c["DW"])
    dy = rng.standard_normal((c["N"], c["F"], OH, OW))
    return dict(x=x, weight=weight, dy=dy, config=c)


def _arguments(c):
    return (c["SH"], c["SW"]), (c["PH"], c["PW"]), (c["OPH"], c["OPW"]), (c["DH"], c["DW"]), c["G"]


def run(module, inputs):
    c = inputs["config"]
    y = module.conv_transpose2d(inputs["x"], inputs["weight"], *_arguments(c))
    dx, dweight = module.conv_transpose2d_backward(inputs["x"], inputs["weight"], inputs["dy"], *_arguments(c))
    return {"y": y, "dx": dx, "dweight": dweight}


def diagnose(output, got, want, inputs, config):
    if output == "dweight" and got.shape[0] == got.shape[1] and np.allclose(got, want.swapaxes(0, 1), atol=1e-9):
        return ("the result is the transpose: dweight has weight's layout (C_in, C_out/G, KH, KW), "
                "dweight[c, f] pairs x's channel c with dy's channel f")
    if output == "y":
        weight = inputs["weight"]
        as_conv2d = weight.swapaxes(0, 1).reshape(weight.shape)  # weight read as conv2d's (C_out, C_in, ...)
        if np.allclose(got, conv_transpose2d(inputs["x"], as_conv2d, config), atol=1e-9):
            return ("the weight's axes 0 and 1 are swapped: conv_transpose2d's weight is (C_in, C_out/G, KH, KW) "
                    "(the weight of the conv2d going the other way), not conv2d's (C_out, C_in/G, KH, KW)")
    return None


def engine(minidl, inputs):
    """minidl's conv_transpose2d forward and backward (random upstream gradient): y, dx, dweight."""
    c = inputs["config"]
    x = minidl.tensor(inputs["x"], requires_grad=True)
    weight = minidl.tensor(inputs["weight"], requires_grad=True)
    stride, padding, output_padding, dilation, groups = _arguments(c)
    y = minidl.nn.functional.conv_transpose2d(x, weight, stride=stride, padding=padding,
                                              output_padding=output_padding, groups=groups, dilation=dilation)
    y.backward(minidl.tensor(np.random.default_rng(2).standard_normal(tuple(y.shape))))
    return {"y": y.detach().numpy(), "dx": x.grad.numpy(), "dweight": weight.grad.numpy()}


def overrides(student):
    """minidl's ConvTranspose2d runs the student's forward and backward on CPU (NumPy) arrays
    with output_padding < stride (the exercise's scope); anything else keeps the library's."""
    from minidl.ops.conv import ConvTranspose2d
    library_forward, library_backward = ConvTranspose2d.forward, ConvTranspose2d.backward

    def forward(self, x, weight, bias, stride, padding, output_padding, groups, dilation):
        self.by_student = type(x) is np.ndarray and all(o < s for o, s in zip(output_padding, stride))
        if not self.by_student:
            return library_forward(self, x, weight, bias, stride, padding, output_padding, groups, dilation)
        y = student.conv_transpose2d(x, weight, stride, padding, output_padding, dilation, groups)
        if bias is not None:
            y = y + bias.reshape(-1, 1, 1)
        self.save(x=x, weight=weight, arguments=(stride, padding, output_padding, dilation, groups))
        return y

    def backward(self, dy):
        if not self.by_student:
            return library_backward(self, dy)
        s = self.saved
        dx, dweight = student.conv_transpose2d_backward(s.x, s.weight, dy, *s.arguments)
        dbias = dy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None
        return dx, dweight, dbias, None, None, None, None, None

    return [(ConvTranspose2d, "forward", forward), (ConvTranspose2d, "backward", backward)]


MUTANTS = [
    ("weight_g = weight.reshape(G, C // G, Fg * KH * KW)  # (G, C/G, Kt/G): Wt[g]",
     "weight_g = weight.swapaxes(0, 1).reshape(G, C // G, Fg * KH * KW)", "axes 0 and 1 are swapped"),
    ("y = col2im(cols.reshape(N, F * KH * KW, H * W), (N, F, OH, OW), KH, KW, SH, SW, PH, PW, DH, DW)",
     "y = np.pad(col2im(cols.reshape(N, F * KH * KW, H * W), (N, F, OH - OPH, OW - OPW), KH, KW, SH, SW, PH, PW, DH, DW), "
     "((0, 0), (0, 0), (0, OPH), (0, OPW)))", "only output_padding > 0 fails"),
    ("dcols = im2col(dy, KH, KW, SH, SW, PH, PW, DH, DW)  # (N, Kt, L): the dy under each stamp",
     "dcols = im2col(dy, KH, KW, 1, 1, PH, PW, DH, DW)", "only stride > 1 fails"),
    ("dweight = (x_g @ dcols.swapaxes(-1, -2)).sum(axis=0)", "dweight = (x_g @ dcols.swapaxes(-1, -2)).mean(axis=0)",
     "off by a factor equal to the batch size"),
    ("return dx, dweight.reshape(weight.shape)", "return dx, dweight.reshape(weight.shape).swapaxes(0, 1)",
     "the result is the transpose"),
]
