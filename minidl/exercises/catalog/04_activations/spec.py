"""How `minidl ex check activations` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "activations"
TITLE = "ReLU, sigmoid and tanh: forward and backward"
PREREQUISITES = []
FUNCTIONS = ["relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh_backward"]
VALUES = ["relu", "sigmoid"]
REFERENCE = None

GRADIENTS = {"drelu": ("x", lambda i, c: REFERENCE.relu(i["x"]), "dy"),
             "dsigmoid": ("x", lambda i, c: REFERENCE.sigmoid(i["x"]), "dy"),
             "dtanh": ("x", lambda i, c: np.tanh(i["x"]), "dy")}
VARIANTS = []


def valid(c):
    return True


def case(shape=(3, 4), scale=1.0):
    return dict(shape=list(shape), scale=scale)


def public_cases():
    return [case(), case(shape=(2, 3, 5)), case(shape=(7,), scale=1000.0), case(shape=(1,))]


def configs():
    from hypothesis import strategies as st
    return st.builds(case, shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
                     scale=st.sampled_from([1.0, 10.0, 1000.0]))


def gradcheckable(c):
    return c["scale"] < 100  # (finite differences of a saturated sigmoid say nothing)


def make(config, rng):
    x = rng.standard_normal(config["shape"]) * config["scale"]
    x = np.where(np.abs(x) < 1e-3, 0.5, x)  # finite differences need x away from relu's kink
    return dict(x=x, dy=rng.standard_normal(config["shape"]), config=config)


def run(module, inputs):
    x, dy = inputs["x"], inputs["dy"]
    s = module.sigmoid(x)
    return {"relu": module.relu(x), "sigmoid": s, "drelu": module.relu_backward(x, dy),
            "dsigmoid": module.sigmoid_backward(s, dy), "dtanh": module.tanh_backward(np.tanh(x), dy)}


def diagnose(output, got, want, inputs, config):
    x, dy = inputs["x"], inputs["dy"]
    if output.startswith("d") and np.allclose(got * dy, want, atol=1e-9) and not np.allclose(got, want, atol=1e-9):
        return "you returned the derivative alone -> multiply by the upstream gradient dy (the chain rule)"
    if output == "dtanh" and np.allclose(got, dy * (1 - np.tanh(x)), atol=1e-9):
        return "tanh'(x) in terms of y = tanh(x) is 1 - y*y, not 1 - y"
    wrong = np.abs(got - want) > 1e-9
    if output == "sigmoid" and wrong.any() and np.all(x[wrong] < 0):
        return "errors only where x < 0 -> there sigmoid(x) = e / (1 + e) with e = exp(x) = exp(-|x|)"
    return None


SPECIAL_FIRST = True
def overrides(student):
    """minidl's ReLU, Sigmoid and Tanh Functions (minidl/ops/activation.py) call your functions."""
    from minidl.ops import activation

    def relu_forward(self, x):
        y = student.relu(x)
        self.save(y=y)
        return y

    def sigmoid_forward(self, x):
        y = student.sigmoid(x)
        self.save(y=y)
        return y
    return [(activation.Relu, "forward", relu_forward),
            # ReLU keeps y: [x > 0] = [y > 0], so y stands in for x
            (activation.Relu, "backward", lambda self, dy: student.relu_backward(self.saved.y, dy)),
            (activation.Sigmoid, "forward", sigmoid_forward),
            (activation.Sigmoid, "backward", lambda self, dy: student.sigmoid_backward(self.saved.y, dy)),
            (activation.Tanh, "backward", lambda self, dy: student.tanh_backward(self.saved.y, dy))]


def engine(minidl, inputs):
    """minidl.relu, sigmoid and tanh forward and backward."""
    out = {}
    for name in ("relu", "sigmoid", "tanh"):
        x = minidl.tensor(inputs["x"], requires_grad=True)
        y = getattr(minidl, name)(x)
        y.backward(minidl.tensor(inputs["dy"]))
        out[name], out["d" + name] = y.detach().numpy(), x.grad.numpy()
    return out

MUTANTS = [
    ("return dy * (x > 0)", "return (x > 0).astype(dy.dtype)", "multiply by the upstream gradient dy"),
    ("return dy * y * (1 - y)", "return -dy * y * (1 - y)", "wrong sign"),
    ("return dy * (1 - y * y)", "return dy * (1 - y)", "not 1 - y"),
    ("return np.where(x >= 0, 1 / (1 + e), e / (1 + e))", "return np.where(x >= 0, 1 / (1 + e), 1 / (1 + e))",
     "errors only where x < 0"),
]
