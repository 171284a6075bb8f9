"""How `minidl ex check bce_with_logits` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "bce_with_logits"
TITLE = "binary cross-entropy with logits, stable, with weight, pos_weight and the three reductions"
PREREQUISITES = ["activations"]
FUNCTIONS = ["softplus", "bce_with_logits", "bce_with_logits_backward"]
VALUES = ["loss"]
REFERENCE = None  # set by the grader (Checker) to the reference module, for the forward below


def _forward(inputs, config):
    return REFERENCE.bce_with_logits(inputs["z"], inputs["target"], inputs["weight"], inputs["pos_weight"],
                                     config["reduction"])


GRADIENTS = {"dz": ("z", _forward, "dy")}
STABLE = "log(1 + exp(z)) overflows for large |z|: use the stable form max(u, 0) + log1p(exp(-|u|)) for softplus(u)"
VARIANTS = [("scale", 1.0, "only large logits fail -> " + STABLE),
            ("pos", False, "only pos_weight != 1 fails -> pos_weight multiplies the positive term only: "
                           "pw * t * softplus(-z) (= -pw t log sigmoid(z)), not (1 - t) * softplus(z)"),
            ("weighted", False, "only weight != 1 fails -> weight multiplies each element's loss, and so its gradient"),
            ("soft", False, "only soft targets (0 < t < 1) fail -> use t and 1 - t as numbers, not a test t == 1")]


def valid(c):
    return True


def case(N=3, C=2, reduction="mean", weighted=False, pos=False, soft=False, scale=1.0):
    return dict(N=N, C=C, reduction=reduction, weighted=weighted, pos=pos, soft=soft, scale=scale)


def public_cases():
    return [case(),                                         # mean over N*C = 6 elements
            case(reduction="sum"),
            case(N=2, C=3, reduction="none"),
            case(C=3, pos=True),                            # pos_weight (C,)
            case(weighted=True),                            # weight (N, 1)
            case(N=2, C=3, reduction="sum", scale=1000.0),  # logits of +-1e3
            case(N=1, C=1),
            case(N=5, C=3, reduction="none", weighted=True, pos=True, soft=True)]


def configs():
    from hypothesis import strategies as st
    return st.builds(case, N=st.integers(1, 4), C=st.integers(1, 3), reduction=st.sampled_from(["none", "sum", "mean"]),
                     weighted=st.booleans(), pos=st.booleans(), soft=st.booleans(),
                     scale=st.sampled_from([1.0, 10.0, 1000.0]))


def gradcheckable(c):
    return c["scale"] < 100  # (compared with the reference instead at logits of 1e3)


def make(config, rng):
    c = config
    z = rng.standard_normal((c["N"], c["C"])) * c["scale"]
    target = rng.random((c["N"], c["C"])) if c["soft"] else rng.integers(0, 2, (c["N"], c["C"])).astype(np.float64)
    if c["scale"] >= 100 and z.size >= 2:  # both overflows of the unstable form: z >> 0 with t = 0, z << 0 with t = 1
        z.flat[0], target.flat[0] = c["scale"], 0.0
        z.flat[-1], target.flat[-1] = -c["scale"], 1.0
    weight = rng.uniform(0.5, 2.0, (c["N"], 1)) if c["weighted"] else np.ones((c["N"], 1))
    pos_weight = rng.uniform(0.5, 3.0, c["C"]) if c["pos"] else np.ones(c["C"])
    dy = rng.standard_normal((c["N"], c["C"])) if c["reduction"] == "none" else np.asarray(rng.uniform(0.5, 2.0))
    return dict(z=z, target=target, weight=weight, pos_weight=pos_weight, dy=dy, config=c)


def run(module, inputs):
    args = (inputs["z"], inputs["target"], inputs["weight"], inputs["pos_weight"], inputs["config"]["reduction"])
    return {"loss": module.bce_with_logits(*args), "dz": module.bce_with_logits_backward(*args, inputs["dy"])}


def diagnose(output, got, want, inputs, config):
    z = inputs["z"]
    if not np.all(np.isfinite(got)) and np.all(np.isfinite(want)) and np.abs(z).max() >= 100:
        return STABLE
    mask = np.abs(want) > 1e-12
    if config["reduction"] == "mean" and z.size > 1 and mask.any():
        ratio = got[mask] / want[mask]
        if np.allclose(ratio, z.size, rtol=1e-6) or np.allclose(ratio, 1 / z.size, rtol=1e-6):
            return (f"off by a factor {z.size}, the number of elements N*C: reduction='mean' divides the sum "
                    f"by it, so the backward scales dy by 1 / (N*C) too")
    return None


SPECIAL_FIRST = True


def overrides(student):
    """minidl's F.binary_cross_entropy_with_logits (minidl.ops.loss.BinaryCrossEntropyWithLogits)
    computes its loss and dz with the student's functions; the target's gradient stays the
    library's, and so does what a function still left as a stub (NotImplementedError) computes."""
    from minidl.ops.loss import BinaryCrossEntropyWithLogits as Op
    library_forward, library_backward = Op.forward, Op.backward

    def one(value, x):  # None (not given) means 1
        return np.ones((), dtype=x.dtype) if value is None else value

    def forward(self, x, target, weight, pos_weight, reduction):
        y = library_forward(self, x, target, weight, pos_weight, reduction)  # saves what backward reads
        s = self.saved  # t, weight, pos_weight cast to x's dtype
        try:
            return student.bce_with_logits(x, s.t, one(s.weight, x), one(s.pos_weight, x), reduction)
        except NotImplementedError:
            return y

    def backward(self, dy):
        s = self.saved
        dx = dt = None
        if self.needs_input_grad[0]:
            try:
                dx = student.bce_with_logits_backward(s.x, s.t, one(s.weight, s.x), one(s.pos_weight, s.x),
                                                      s.reduction, dy)
            except NotImplementedError:
                dx = library_backward(self, dy)[0]
        if self.needs_input_grad[1]:
            dt = library_backward(self, dy)[1]
        return dx, dt, None, None, None
    return [(Op, "forward", forward), (Op, "backward", backward)]


def engine(minidl, inputs):
    """minidl.nn.functional.binary_cross_entropy_with_logits forward and autograd backward."""
    c = inputs["config"]
    z = minidl.tensor(inputs["z"], requires_grad=True)
    target = minidl.tensor(inputs["target"], requires_grad=True)
    loss = minidl.nn.functional.binary_cross_entropy_with_logits(
        z, target, weight=minidl.tensor(inputs["weight"]) if c["weighted"] else None,
        pos_weight=minidl.tensor(inputs["pos_weight"]) if c["pos"] else None, reduction=c["reduction"])
    loss.backward(minidl.tensor(inputs["dy"]))
    return {"loss": loss.detach().numpy(), "dz": z.grad.numpy(), "dtarget": target.grad.numpy()}


MUTANTS = [
    ("return np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u)))  # = log(1 + exp(u)); exp(-|u|) is in (0, 1]",
     "return np.log(1 + np.exp(u))", "overflows for large |z|: use the stable form"),
    ("loss = weight * (pos_weight * target * softplus(-z) + (1 - target) * softplus(z))  # (N, C)",
     "loss = -weight * (pos_weight * target * np.log(1 / (1 + np.exp(-z))) + (1 - target) * np.log(1 - 1 / (1 + np.exp(-z))))",
     "overflows for large |z|: use the stable form"),
    ("return g * weight * (pos_weight * target * (s - 1) + (1 - target) * s)",
     "return g * weight * (pos_weight * target * (1 - s) - (1 - target) * s)", "wrong sign"),
    ("g = dy / z.size if reduction == \"mean\" else dy  # dL/dloss[n, c]: the mean divides by N*C",
     "g = dy", "off by a factor"),
    ("return np.asarray(loss.sum() / loss.size)", "return np.asarray(loss.sum())", "off by a factor"),
    ("loss = weight * (pos_weight * target * softplus(-z) + (1 - target) * softplus(z))  # (N, C)",
     "loss = weight * (target * softplus(-z) + pos_weight * (1 - target) * softplus(z))", "only pos_weight != 1 fails"),
]
