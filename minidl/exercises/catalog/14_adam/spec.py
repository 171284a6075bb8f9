"""How `minidl ex check adam` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "adam"
TITLE = "Adam: one update with bias correction and L2 weight decay, as torch.optim.Adam"
PREREQUISITES = []
FUNCTIONS = ["adam_step"]
VALUES = ["param", "m", "v"]  # after k steps
GRADIENTS = {}
VARIANTS = [("weight_decay", 0.0, "only weight_decay > 0 fails -> Adam's weight decay is an L2 penalty: "
             "g = grad + weight_decay * param, used in m and v (not AdamW's p *= 1 - lr * weight_decay)")]


def valid(c):
    return c["k"] >= 1 and 0 <= c["beta1"] < 1 and 0 <= c["beta2"] < 1


def case(k=3, shape=(3, 4), lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, scale=1.0):
    return dict(k=k, shape=list(shape), lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                scale=scale)


def public_cases():
    return [case(),                                                 # the defaults of torch.optim.Adam
            case(k=1, shape=(5,)),                                  # the first step: bias correction matters most
            case(k=5, lr=0.1, beta1=0.5, beta2=0.6, shape=(2, 3, 2)),   # small betas: every step counts
            case(eps=0.1, scale=1e-2),                              # eps comparable to sqrt(v)
            case(weight_decay=0.1, k=4),                            # the L2 penalty
            case(k=2, shape=(1,), lr=0.5, beta1=0.0, beta2=0.99, eps=1e-3, weight_decay=0.01)]


def configs():
    from hypothesis import strategies as st
    return st.builds(case, k=st.integers(1, 5), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
                     lr=st.sampled_from([1e-3, 1e-2, 0.1, 1.0]), beta1=st.sampled_from([0.0, 0.5, 0.9]),
                     beta2=st.sampled_from([0.5, 0.9, 0.999]), eps=st.sampled_from([1e-8, 1e-3, 0.1]),
                     weight_decay=st.sampled_from([0.0, 0.01, 0.5]), scale=st.sampled_from([1e-2, 1.0, 10.0]))


def make(config, rng):
    shape = tuple(config["shape"])
    return dict(param=rng.standard_normal(shape), grads=rng.standard_normal((config["k"],) + shape) * config["scale"],
                config=config)


def run(module, inputs):
    c = inputs["config"]
    param = inputs["param"]
    m, v = np.zeros_like(param), np.zeros_like(param)
    for t in range(1, c["k"] + 1):
        param, m, v = module.adam_step(param, inputs["grads"][t - 1], m, v, t, c["lr"], c["beta1"], c["beta2"],
                                       c["eps"], c["weight_decay"])
    return {"param": param, "m": m, "v": v}


# ---- diagnose: replay the classic wrong updates and see which one the student's numbers match ----

def _adam(inputs, c, bias=True, shift=0, eps_inside=False, square=True, decay="l2"):
    param = inputs["param"]
    m, v = np.zeros_like(param), np.zeros_like(param)
    b1, b2, lr, eps, wd = c["beta1"], c["beta2"], c["lr"], c["eps"], c["weight_decay"]
    for t in range(1, c["k"] + 1):
        grad, s = inputs["grads"][t - 1], t + shift
        g = grad + wd * param if decay == "l2" else grad
        if decay == "adamw":
            param = param * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (g * g if square else g)
        m_hat, v_hat = (m / (1 - b1 ** s), v / (1 - b2 ** s)) if bias else (m, v)
        denom = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
        param = param - lr * m_hat / denom
    return {"param": param, "m": m, "v": v}


WRONG = [
    (dict(bias=False), "no bias correction: divide m by 1 - beta1**t and v by 1 - beta2**t (m and v start at 0, "
     "so their early averages are too small: the error is largest at small t)"),
    (dict(shift=1), "t is off by one: t counts from 1 (the first step has t = 1), so the bias corrections "
     "are 1 - beta1**t and 1 - beta2**t with the t you are given"),
    (dict(shift=-1), "t is off by one: t counts from 1 (the first step has t = 1), so the bias corrections "
     "are 1 - beta1**t and 1 - beta2**t with the t you are given"),
    (dict(eps_inside=True), "eps is inside the square root: the denominator is sqrt(v_hat) + eps, not sqrt(v_hat + eps)"),
    (dict(square=False), "v is the running mean of grad**2 (g * g), not of grad"),
    (dict(decay="none"), "weight decay forgotten: Adam adds weight_decay * param to the gradient before m and v"),
    (dict(decay="adamw"), "weight decay applied as AdamW (p *= 1 - lr * weight_decay): torch.optim.Adam's is an "
     "L2 penalty added to the gradient, g = grad + weight_decay * param"),
]


def diagnose(output, got, want, inputs, config):
    for options, meaning in WRONG:
        wrong = _adam(inputs, config, **options)[output]
        if np.allclose(got, wrong, rtol=1e-9, atol=1e-12, equal_nan=True) and \
                not np.allclose(wrong, want, rtol=1e-9, atol=1e-12, equal_nan=True):
            return meaning
    return None


SPECIAL_FIRST = True


def overrides(student):
    """minidl's Adam (minidl/optim/adam.py) updates each parameter with your adam_step: its
    per-parameter ``_update`` is swapped, and its multi-tensor route (all parameters at once) is
    turned off by default so that ``_update`` is what runs. AdamW, amsgrad, maximize and arrays
    that are not NumPy arrays (another device) keep the library's update."""
    from minidl.optim import Adam

    library = Adam._update

    def update(self, param, grad, state, group):
        if self._decoupled_weight_decay or group["amsgrad"] or group["maximize"] or type(param) is not np.ndarray:
            return library(self, param, grad, state, group)  # (the student's code is NumPy code)
        if not state:
            state.update(step=0.0, exp_avg=np.zeros_like(param), exp_avg_sq=np.zeros_like(param))
        state["step"] += 1
        beta1, beta2 = group["betas"]
        new_param, m, v = student.adam_step(param, grad, state["exp_avg"], state["exp_avg_sq"], int(state["step"]),
                                            group["lr"], beta1, beta2, group["eps"], group["weight_decay"])
        param[...] = new_param  # in place, as the library's update: views of the parameter see it
        state["exp_avg"][...] = m
        state["exp_avg_sq"][...] = v

    return [(Adam, "_update", update), (Adam, "_foreach_default", False)]


def engine(minidl, inputs):
    """minidl.optim.Adam for k steps on a Parameter whose .grad is set to the given gradients."""
    c = inputs["config"]
    p = minidl.nn.Parameter(minidl.tensor(inputs["param"]))
    opt = minidl.optim.Adam([p], lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"],
                            weight_decay=c["weight_decay"])
    for t in range(c["k"]):
        p.grad = minidl.tensor(inputs["grads"][t])
        opt.step()
    state = opt.state[p]
    return {"param": p.detach().numpy().copy(), "m": np.array(state["exp_avg"]), "v": np.array(state["exp_avg_sq"])}


MUTANTS = [
    ("    m_hat = m / (1 - beta1 ** t)  # bias corrections: m and v start at 0, so\n"
     "    v_hat = v / (1 - beta2 ** t)  # early averages are too small\n",
     "    m_hat = m\n    v_hat = v\n", "no bias correction"),
    ("    m_hat = m / (1 - beta1 ** t)  # bias corrections: m and v start at 0, so\n"
     "    v_hat = v / (1 - beta2 ** t)  # early averages are too small\n",
     "    m_hat = m / (1 - beta1 ** (t + 1))\n    v_hat = v / (1 - beta2 ** (t + 1))\n", "t is off by one"),
    ("param = param - lr * m_hat / (np.sqrt(v_hat) + eps)", "param = param - lr * m_hat / np.sqrt(v_hat + eps)",
     "eps is inside the square root"),
    ("v = beta2 * v + (1 - beta2) * g * g", "v = beta2 * v + (1 - beta2) * g", "running mean of grad**2"),
    ("g = grad + weight_decay * param", "g = grad", "weight decay forgotten"),
    ("g = grad + weight_decay * param", "g = grad\n    param = param * (1 - lr * weight_decay)", "applied as AdamW"),
]
