"""How `minidl ex check softmax_cross_entropy` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "softmax_cross_entropy"
TITLE = "pixel-wise softmax cross-entropy (N, C, H, W) with class weights and ignore_index"
PREREQUISITES = ["sum_to_shape"]
FUNCTIONS = ["log_softmax", "softmax_cross_entropy", "softmax_cross_entropy_backward"]
VALUES = ["loss"]
IGNORE = -100


def _forward(inputs, config):
    return REFERENCE.softmax_cross_entropy(inputs["logits"], inputs["target"], inputs["weight"], IGNORE)


GRADIENTS = {"dlogits": ("logits", _forward, "dloss")}
VARIANTS = [("ignored", False, "only pixels with target == ignore_index fail -> give them weight 0, in the sum AND in the normaliser"),
            ("weighted", False, "only class weights != 1 fail -> weight each pixel by weight[target] and divide by the sum of those weights"),
            ("scale", 1.0, "only large logits fail -> a missing max-shift in softmax overflows at logits of 1e3")]


def valid(c):
    return True


def case(N=2, C=3, H=3, W=4, scale=1.0, weighted=False, ignored=False):
    return dict(N=N, C=C, H=H, W=W, scale=scale, weighted=weighted, ignored=ignored)


def public_cases():
    return [case(), case(weighted=True), case(ignored=True), case(N=1, C=2, H=1, W=2),
            case(scale=1000.0), case(N=3, C=4, H=2, W=3, weighted=True, ignored=True)]


def configs():
    from hypothesis import strategies as st
    return st.builds(case, N=st.integers(1, 3), C=st.integers(1, 4), H=st.integers(1, 3), W=st.integers(1, 3),
                     scale=st.sampled_from([1.0, 10.0, 1000.0]), weighted=st.booleans(), ignored=st.booleans())


def make(config, rng):
    c = config
    logits = rng.standard_normal((c["N"], c["C"], c["H"], c["W"])) * c["scale"]
    target = rng.integers(0, c["C"], size=(c["N"], c["H"], c["W"]))
    if c["ignored"]:
        drop = rng.random(target.shape) < 0.3
        drop.flat[0] = target.size > 1  # at least one ignored pixel, and
        drop.flat[-1] = False            # at least one that counts
        target[drop] = IGNORE
    weight = rng.uniform(0.5, 2.0, c["C"]) if c["weighted"] else np.ones(c["C"])
    return dict(logits=logits, target=target, weight=weight, dloss=np.asarray(rng.uniform(0.5, 2.0)), config=c)


def run(module, inputs):
    args = (inputs["logits"], inputs["target"], inputs["weight"], IGNORE)
    return {"loss": module.softmax_cross_entropy(*args),
            "dlogits": module.softmax_cross_entropy_backward(*args, inputs["dloss"])}


def diagnose(output, got, want, inputs, config):
    if not np.all(np.isfinite(got)) and np.abs(inputs["logits"]).max() >= 100:
        return "a missing max-shift in softmax overflows at logits of 1e3: subtract the max over the classes before exp"
    return None


SPECIAL_FIRST = True
REFERENCE = None  # set by the grader (Checker) to the reference module, for the forward above
def overrides(student):
    """minidl's cross_entropy (minidl/ops/loss.py CrossEntropy) takes its gradient from your
    softmax_cross_entropy_backward for (N, C, H, W) logits, reduction 'mean' and no label
    smoothing (the U-Net's loss); other uses keep the library's backward."""
    from minidl.ops.loss import CrossEntropy
    library = CrossEntropy.backward

    def backward(self, dy):
        s = self.saved
        if s.reduction != "mean" or s.label_smoothing != 0 or len(s.x_shape) != 4:
            return library(self, dy)
        # softmax(logp) = softmax(logits): the saved log-probabilities stand in for the logits
        target = np.where(s.valid, s.t, IGNORE)  # (N, H, W): ignored pixels back to IGNORE
        weight = s.w_col.reshape(-1) if s.w_col is not None else np.ones(s.x_shape[1], s.logp.dtype)
        dx = student.softmax_cross_entropy_backward(s.logp, target, weight, IGNORE, dy)
        return (dx, None, None, None, None, None)
    return [(CrossEntropy, "backward", backward)]


def engine(minidl, inputs):
    """minidl.nn.functional.cross_entropy forward and backward."""
    logits = minidl.tensor(inputs["logits"], requires_grad=True)
    weight = minidl.tensor(inputs["weight"]) if inputs["config"]["weighted"] else None
    loss = minidl.nn.functional.cross_entropy(logits, minidl.tensor(inputs["target"]), weight=weight,
                                              ignore_index=IGNORE)
    (loss * float(inputs["dloss"])).backward()
    return {"loss": loss.detach().numpy(), "dlogits": logits.grad.numpy()}

MUTANTS = [
    ("shifted = logits - logits.max(axis=1, keepdims=True)", "shifted = logits", "a missing max-shift"),
    ("w = weight[safe] * valid  # (N, H, W): the pixel's class weight, 0 where ignored",
     "w = weight[safe]", "only pixels with target == ignore_index fail"),
    ("return np.asarray(-(w * logp).sum() / w.sum())", "return np.asarray(-(w * logp).sum() / valid.sum(dtype=logp.dtype))",
     "only class weights != 1 fail"),
    ("return dloss * (p - onehot) * (wb / wb.sum())[:, None]", "return dloss * (onehot - p) * (wb / wb.sum())[:, None]",
     "wrong sign"),
]
