"""How `minidl ex check concat_crop` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "concat_crop"
TITLE = "U-Net's skip connection: center_crop and cat, forward and backward"
PREREQUISITES = []
FUNCTIONS = ["center_crop", "center_crop_backward", "cat_backward"]
VALUES = ["y"]


def crop(x, H, W):
    """The crop written with explicit offsets (the floor rule of docs/gradients/center_crop.md)."""
    top, left = (x.shape[-2] - H) // 2, (x.shape[-1] - W) // 2
    return x[..., top:top + H, left:left + W]


def cat(inputs, c):
    return np.concatenate([inputs["a"], inputs["b"], inputs["c"]], axis=c["dim"])


GRADIENTS = {"dx": ("x", lambda i, c: crop(i["x"], c["H"], c["W"]), "dy"),
             "da": ("a", cat, "dz"), "db": ("b", cat, "dz"), "dc": ("c", cat, "dz")}


def sizes(c):
    """The pieces' lengths along dim: two pieces (n2 == 0) or three."""
    return [c["n0"], c["n1"]] + ([c["n2"]] if c["n2"] else [])


def piece_shape(c, n):
    shape = [c["N"], c["C"], c["H"], c["W"]]
    shape[c["dim"]] = n
    return tuple(shape)


def valid(c):
    return 1 <= c["H"] <= c["Hx"] and 1 <= c["W"] <= c["Wx"]


def case(N=2, C=3, Hx=7, Wx=8, H=4, W=5, dim=1, n0=2, n1=2, n2=0):
    return dict(N=N, C=C, Hx=Hx, Wx=Wx, H=H, W=W, dim=dim, n0=n0, n1=n1, n2=n2)


def public_cases():
    # U-Net concatenates two halves of equal width (C/2 skip channels, C/2 up-sampled ones):
    # the public pieces are symmetric (n0 == n1, or n0 == n2 with three pieces).
    return [case(),                                     # odd differences 7 - 4, 8 - 5; dim = 1 (channels)
            case(Hx=9, Wx=6, H=4, W=3, dim=2, n0=3, n1=3),  # odd differences; dim = 2 (rows)
            case(Hx=6, Wx=9, H=2, W=4, dim=3, n0=1, n1=1),  # even and odd; dim = 3 (columns)
            case(N=1, dim=0, n0=2, n1=2),               # dim = 0 (the batch)
            case(dim=1, n0=2, n1=3, n2=2),              # three pieces
            case(Hx=5, Wx=5, H=5, W=5, C=2, dim=1, n0=1, n1=1),  # crop to the same size
            case(N=1, C=1, Hx=4, Wx=7, H=1, W=6, dim=3, n0=2, n1=1, n2=2)]


def configs():
    from hypothesis import strategies as st
    return st.builds(case, N=st.integers(1, 2), C=st.integers(1, 3), Hx=st.integers(1, 7), Wx=st.integers(1, 7),
                     H=st.integers(1, 7), W=st.integers(1, 7), dim=st.integers(0, 3), n0=st.integers(1, 3),
                     n1=st.integers(1, 3), n2=st.integers(0, 3))


def make(config, rng):
    c = config
    x = rng.standard_normal((c["N"], c["C"], c["Hx"], c["Wx"]))
    dy = rng.standard_normal((c["N"], c["C"], c["H"], c["W"]))
    a, b, c3 = (rng.standard_normal(piece_shape(c, n)) for n in (c["n0"], c["n1"], c["n2"]))
    dz = rng.standard_normal(piece_shape(c, c["n0"] + c["n1"] + c["n2"]))
    return dict(x=x, dy=dy, a=a, b=b, c=c3, dz=dz, config=c)


def run(module, inputs):
    c = inputs["config"]
    y = module.center_crop(inputs["x"], c["H"], c["W"])
    dx = module.center_crop_backward(inputs["dy"], inputs["x"].shape)
    pieces = list(module.cat_backward(inputs["dz"], sizes(c), c["dim"]))
    if len(pieces) != len(sizes(c)):
        raise ValueError(f"cat_backward returned {len(pieces)} pieces for {len(sizes(c))} sizes")
    if not c["n2"]:  # two pieces: the third input is empty, so is its gradient
        pieces.append(np.zeros(inputs["c"].shape, dtype=inputs["dz"].dtype))
    return {"y": y, "dx": dx, "da": pieces[0], "db": pieces[1], "dc": pieces[2]}


def _placed(dy, x_shape, row, column):
    dx = np.zeros(x_shape)
    dx[..., row:row + dy.shape[-2], column:column + dy.shape[-1]] = dy
    return dx


def diagnose(output, got, want, inputs, config):
    c = config
    Hx, Wx, H, W = c["Hx"], c["Wx"], c["H"], c["W"]
    top, left = (Hx - H) // 2, (Wx - W) // 2
    if output == "y":
        for row in range(Hx - H + 1):
            for column in range(Wx - W + 1):
                if (row, column) != (top, left) and np.array_equal(got, inputs["x"][..., row:row + H, column:column + W]):
                    return (f"the crop is shifted: it starts at row {row}, column {column}, expected ({top}, {left}): "
                            f"the offset is (Hx - H) // 2 = ({Hx} - {H}) // 2 (and (Wx - W) // 2): for an odd "
                            f"difference the extra row is cut at the bottom, the extra column on the right")
    if output == "dx":
        for row in range(Hx - H + 1):
            for column in range(Wx - W + 1):
                if (row, column) != (top, left) and np.array_equal(got, _placed(inputs["dy"], got.shape, row, column)):
                    where = "at the top-left corner" if (row, column) == (0, 0) else f"at row {row}, column {column}"
                    return (f"dy is placed {where}: put it back where the crop's window started, row (Hx - H) // 2 "
                            f"= {top}, column (Wx - W) // 2 = {left}, zeros elsewhere")
    if output in ("da", "db", "dc"):
        t = "abc".index(output[1])
        k = len(sizes(c))
        pieces = np.split(inputs["dz"], np.cumsum(sizes(c))[:-1], axis=c["dim"])
        other = k - 1 - t
        if t < k and other != t and np.array_equal(got, pieces[other]):
            return (f"the pieces are in reverse order: piece {t} got the slice of piece {other}; piece t is "
                    f"dz[offset_t : offset_t + n_t] along dim, the first input's gradient first")
    return None


SPECIAL_FIRST = True


def overrides(student):
    """minidl's Crop.backward (for a centre crop) and Cat.backward call the student's functions."""
    from minidl.ops import join, pad
    crop_backward = pad.Crop.backward  # the library's, for crops that are not centred

    def centre_crop_backward(self, dy):
        (top, bottom), (left, right) = self.saved.widths
        if top != (top + bottom) // 2 or left != (left + right) // 2:
            return crop_backward(self, dy)
        x_shape = dy.shape[:-2] + (dy.shape[-2] + top + bottom, dy.shape[-1] + left + right)  # (..., Hx, Wx)
        return student.center_crop_backward(dy, x_shape), None, None, None, None

    def cat_backward(self, dy):
        dim, offsets = self.saved.dim, self.saved.offsets
        pieces = student.cat_backward(dy, [end - start for start, end in zip(offsets, offsets[1:])], dim)
        return (None,) + tuple(p if need else None for p, need in zip(pieces, self.needs_input_grad[1:]))

    return [(pad.Crop, "backward", centre_crop_backward), (join.Cat, "backward", cat_backward)]


def engine(minidl, inputs):
    """minidl's F.center_crop (U-Net's skip) and cat: forward, and backward with random upstreams."""
    c = inputs["config"]
    F = minidl.nn.functional
    x = minidl.tensor(inputs["x"], requires_grad=True)
    y = F.center_crop(x, (c["H"], c["W"]))
    y.backward(minidl.tensor(inputs["dy"]))
    pieces = [minidl.tensor(inputs[k], requires_grad=True) for k in "abc"]
    z = minidl.cat(pieces if c["n2"] else pieces[:2], dim=c["dim"])
    z.backward(minidl.tensor(inputs["dz"]))
    grads = {k: (p.grad.numpy() if p.grad is not None else np.zeros(p.shape)) for k, p in zip(("da", "db", "dc"), pieces)}
    return {"y": y.detach().numpy(), "dx": x.grad.numpy(), **grads}


def diagnose_shape(output, got_shape, want_shape, inputs, config):
    """A cat piece with the whole joined length along dim, or cut along another axis: dy was
    split along the wrong axis."""
    if output not in ("da", "db", "dc") or len(got_shape) != len(want_shape):
        return None
    dim, joined = config["dim"], config["n0"] + config["n1"] + config["n2"]
    differing = [axis for axis, (g, w) in enumerate(zip(got_shape, want_shape)) if g != w]
    if dim in differing and (got_shape[dim] == joined or len(differing) == 2):
        return (f"dy was not split along dim = {dim} (the axis cat joined the pieces on): "
                "split dy with axis=dim, where the sizes are")
    return None


MUTANTS = [
    ("top, left = (Hx - H) // 2, (Wx - W) // 2  # odd difference: the extra row (column) is cut at the bottom (right)",
     "top, left = (Hx - H + 1) // 2, (Wx - W + 1) // 2", "the crop is shifted"),
    ("dx[..., row:row + H, column:column + W] = dy  # dy back in its window, zeros outside",
     "dx[..., :H, :W] = dy", "dy is placed at the top-left corner"),
    ("pieces = np.split(dy, offsets, axis=dim)  # dx_t = dy[offset_t : offset_t + n_t] along dim",
     "pieces = np.split(dy, offsets, axis=1)", "dy was not split along dim"),
    ("return list(pieces)", "return list(pieces)[::-1]", "the pieces are in reverse order"),
]
