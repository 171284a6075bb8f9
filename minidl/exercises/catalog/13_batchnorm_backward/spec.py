"""How `minidl ex check batchnorm_backward` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "batchnorm_backward"
TITLE = "batch norm (training): dx, dgamma, dbeta through the batch statistics"
PREREQUISITES = ["sum_to_shape"]
FUNCTIONS = ["batchnorm_backward"]
VALUES = []
AXES = (0, 2, 3)  # every axis but C


def batchnorm(inputs, c):
    """The forward (float64), written independently of the student's file."""
    x = inputs["x"]
    mean = x.mean(axis=AXES, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=AXES, keepdims=True)  # biased, as PyTorch normalises
    return inputs["gamma"][None, :, None, None] * (x - mean) / np.sqrt(var + c["eps"]) + inputs["beta"][None, :, None, None]


# The easy ones first: dbeta and dgamma, then dx (whose formula uses both sums).
GRADIENTS = {"dbeta": ("beta", batchnorm, "dy"), "dgamma": ("gamma", batchnorm, "dy"), "dx": ("x", batchnorm, "dy")}


def valid(c):
    return c["N"] * c["H"] * c["W"] > 1  # one value per channel has no variance (PyTorch refuses it)


def case(N=2, C=3, H=3, W=4, offset=0.0, scale=1.0, eps=1e-5):
    return dict(N=N, C=C, H=H, W=W, offset=offset, scale=scale, eps=eps)


def public_cases():
    return [case(),
            case(N=1, H=3, W=5),                  # N = 1: the statistics are over H*W only
            case(N=3, C=5, H=5, W=7),             # odd sizes
            case(C=1, H=2, W=3),                  # one channel
            case(offset=300.0, scale=0.1),        # a large mean offset: centre before anything else
            case(N=4, H=1, W=1, scale=0.3, eps=0.1),  # (N, C) as BatchNorm1d; eps comparable to the variance
            case(N=1, C=2, H=1, W=2)]             # two values per channel


def configs():
    from hypothesis import strategies as st
    return st.builds(case, N=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(1, 4), W=st.integers(1, 4),
                     offset=st.sampled_from([0.0, 5.0, -300.0]), scale=st.sampled_from([0.1, 1.0, 3.0]),
                     eps=st.sampled_from([1e-5, 0.1]))


def make(config, rng):
    c = config
    x = c["offset"] + c["scale"] * rng.standard_normal((c["N"], c["C"], c["H"], c["W"]))
    return dict(x=x, gamma=rng.standard_normal(c["C"]), beta=rng.standard_normal(c["C"]),
                dy=rng.standard_normal(x.shape), config=c)


def run(module, inputs):
    dx, dgamma, dbeta = module.batchnorm_backward(inputs["x"], inputs["gamma"], inputs["config"]["eps"], inputs["dy"])
    return {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}


def _gradients(x, gamma, eps, dy, M=None, ddof=0, mean_term=True, variance_term=True, dgamma_xhat=True):
    """(dx, dgamma, dbeta) of the compact formula, with one of the classic mistakes switched on."""
    C = x.shape[1]
    M_true = x.size // C
    M = M_true if M is None else M
    centred = x - x.mean(axis=AXES, keepdims=True)
    inv_std = 1 / np.sqrt((centred ** 2).sum(axis=AXES, keepdims=True) / (M_true - ddof) + eps)
    xhat = centred * inv_std
    dbeta = dy.sum(axis=AXES)
    dgamma = (dy * xhat).sum(axis=AXES) if dgamma_xhat else dbeta
    dx = M * dy - (dbeta.reshape(1, C, 1, 1) if mean_term else 0) \
        - (xhat * dgamma.reshape(1, C, 1, 1) if variance_term else 0)
    return {"dx": gamma.reshape(1, C, 1, 1) * inv_std / M * dx, "dgamma": dgamma, "dbeta": dbeta}


MISTAKES = [  # (the mistake, its diagnosis), most specific first
    (dict(dgamma_xhat=False), "dgamma is sum(dy * xhat) over N, H, W, not sum(dy): gamma multiplies xhat"),
    (dict(ddof=1), "the normalisation uses the BIASED variance (divide by M = N*H*W, np.var's ddof=0), "
                   "not the unbiased one (M - 1): only the running variance is unbiased"),
    (dict(mean_term=False), "dx's sum over each channel must be 0: the mean's gradient term (- sum(dy)) is missing"),
    (dict(variance_term=False), "dx must be orthogonal to xhat in each channel: the variance's gradient term "
                                "(- xhat * sum(dy * xhat)) is missing"),
]


def diagnose(output, got, want, inputs, config):
    x, gamma, eps, dy = inputs["x"], inputs["gamma"], config["eps"], inputs["dy"]
    N, C = x.shape[:2]
    mistakes = MISTAKES + [(dict(M=N), f"M counts the values of one channel, M = N*H*W = {x.size // C}, not N = {N}: "
                                       f"the mean and the variance are over N, H and W")]
    for mistake, meaning in mistakes:
        candidate = _gradients(x, gamma, eps, dy, **mistake)[output]
        if np.allclose(got, candidate, rtol=1e-9, atol=1e-12) and not np.allclose(candidate, want, rtol=1e-9, atol=1e-12):
            return meaning
    if output == "dx":  # the two properties of docs/gradients/batch_norm.md, for other mistakes
        scale = np.abs(want).sum(axis=AXES) + 1e-12
        if np.any(np.abs(got.sum(axis=AXES)) > 1e-6 * scale):
            return MISTAKES[2][1] + " or has the wrong factor"
        centred = x - x.mean(axis=AXES, keepdims=True)
        xhat = centred / np.sqrt((centred ** 2).mean(axis=AXES, keepdims=True) + eps)
        if np.any(np.abs((got * xhat).sum(axis=AXES) - (want * xhat).sum(axis=AXES)) > 1e-6 * scale * np.abs(xhat).max()):
            return MISTAKES[3][1] + " or has the wrong factor"
    return None


SPECIAL_FIRST = True


def overrides(student):
    """minidl's BatchNorm Function (training) calls the student's backward. It saves x_hat and inv_std,
    not x or eps: the forward also saves eps, and x is given back centred, x_hat / inv_std (the student's
    statistics of it are the batch's, to rounding)."""
    from minidl.ops import norm
    forward, backward = norm.BatchNorm.forward, norm.BatchNorm.backward  # the library's

    def forward_saving_eps(self, x, weight, bias, running_mean, running_var, training, momentum, eps):
        y = forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps)
        self.save(eps=eps)
        return y

    def student_backward(self, dy):
        s = self.saved
        if not s.training or dy.size == 0:  # evaluation: a plain per-channel scale (the library's)
            return backward(self, dy)
        N, C = dy.shape[:2]
        centred = (s.x_hat / s.inv_std.reshape(s.shape)).reshape(N, C, -1, 1)  # (N, C, L, 1): any (N, C, *) as 4-D
        gamma = s.weight if s.weight is not None else np.ones(C, dtype=dy.dtype)
        dx, dgamma, dbeta = student.batchnorm_backward(centred, gamma, s.eps, dy.reshape(centred.shape))
        needs_x, needs_weight, needs_bias = self.needs_input_grad[:3]
        return (dx.reshape(dy.shape) if needs_x else None, dgamma if needs_weight else None,
                dbeta if needs_bias else None, None, None, None, None, None)

    return [(norm.BatchNorm, "forward", forward_saving_eps), (norm.BatchNorm, "backward", student_backward)]


def engine(minidl, inputs):
    """minidl.nn.functional.batch_norm (training=True) forward and backward: dx, dweight, dbias."""
    x = minidl.tensor(inputs["x"], requires_grad=True)
    weight = minidl.tensor(inputs["gamma"], requires_grad=True)
    bias = minidl.tensor(inputs["beta"], requires_grad=True)
    y = minidl.nn.functional.batch_norm(x, None, None, weight, bias, training=True, eps=inputs["config"]["eps"])
    y.backward(minidl.tensor(inputs["dy"]))
    return {"dx": x.grad.numpy(), "dgamma": weight.grad.numpy(), "dbeta": bias.grad.numpy()}


MUTANTS = [
    ("dx = gamma.reshape(1, C, 1, 1) * inv_std / M * (M * dy - sum_dy - xhat * sum_dy_xhat)",
     "dx = gamma.reshape(1, C, 1, 1) * inv_std / M * (M * dy - xhat * sum_dy_xhat)",
     "the mean's gradient term (- sum(dy)) is missing"),
    ("dx = gamma.reshape(1, C, 1, 1) * inv_std / M * (M * dy - sum_dy - xhat * sum_dy_xhat)",
     "dx = gamma.reshape(1, C, 1, 1) * inv_std / M * (M * dy - sum_dy)",
     "the variance's gradient term"),
    ("M = N * H * W  # the values of one channel", "M = N", "M counts the values of one channel"),
    ("dgamma = (dy * xhat).sum(axis=axes)  # (C,)", "dgamma = dy.sum(axis=axes)  # (C,)", "not sum(dy)"),
    ("variance = (centred * centred).mean(axis=axes, keepdims=True)  # (1, C, 1, 1), biased",
     "variance = (centred * centred).sum(axis=axes, keepdims=True) / (M - 1)", "BIASED variance"),
]
