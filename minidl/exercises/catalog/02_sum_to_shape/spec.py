"""How `minidl ex check sum_to_shape` checks a solution (see minidl/exercises/registry.py)."""
import numpy as np

NAME = "sum_to_shape"
TITLE = "broadcasting's gradient: sum a gradient down to the input's shape"
PREREQUISITES = ["autograd_walk"]
FUNCTIONS = ["sum_to_shape"]
VALUES = []


def shapes(c):
    """(the broadcast shape, the input's shape) of a configuration."""
    tail = list(c["tail"])
    return tuple(c["lead"]) + tuple(tail), tuple(1 if one else n for n, one in zip(tail, c["ones"]))


GRADIENTS = {"dx": ("x", lambda i, c: np.broadcast_to(i["x"], shapes(c)[0]), "grad")}
VARIANTS = [("lead", [], "only an input with fewer dimensions fails -> also sum over the leading axes broadcasting added"),
            ("ones", lambda c: [False] * len(c["tail"]), "only size-1 axes fail -> also sum (keepdims) over the axes where the input has size 1")]


def valid(c):
    return len(c["ones"]) == len(c["tail"])


def case(lead=(), tail=(3, 4), ones=(False, False)):
    return dict(lead=list(lead), tail=list(tail), ones=list(ones))


def public_cases():
    return [case(),                                   # nothing broadcast
            case(lead=(2,)),                          # a new leading axis
            case(tail=(3, 4), ones=(True, False)),    # a size-1 axis
            case(lead=(2, 3), tail=(4, 5, 2), ones=(False, True, False)),
            case(lead=(5,), tail=(1, 3), ones=(False, True))]


def configs():
    from hypothesis import strategies as st
    return st.integers(1, 4).flatmap(lambda n: st.builds(
        case, lead=st.lists(st.integers(1, 4), max_size=2), tail=st.lists(st.integers(1, 4), min_size=n, max_size=n),
        ones=st.lists(st.booleans(), min_size=n, max_size=n)))


def make(config, rng):
    out, shape = shapes(config)
    return dict(x=rng.standard_normal(shape), grad=rng.standard_normal(out), config=config)


def run(module, inputs):
    return {"dx": module.sum_to_shape(inputs["grad"], shapes(inputs["config"])[1])}


SPECIAL_FIRST = True  # the pattern below is exact: test it before the variants


def diagnose(output, got, want, inputs, config):
    out, shape = shapes(config)
    copies = int(np.prod(out)) // max(1, int(np.prod(shape)))
    if copies > 1 and np.allclose(got * copies, want, atol=1e-9):
        return f"a mean where the gradient needs a sum (each value was copied {copies} times; every copy contributes)"
    return None


def engine(minidl, inputs):
    """minidl's broadcasting multiply: x (the input's shape) times ones of the broadcast shape."""
    out, _ = shapes(inputs["config"])
    x = minidl.tensor(inputs["x"], requires_grad=True)
    (x * minidl.ones(out, dtype=minidl.float64)).backward(minidl.tensor(inputs["grad"]))
    return {"dx": x.grad.numpy()}


OVERRIDES = [("minidl.autograd", "sum_to_shape")]  # the one place autograd undoes broadcasting

MUTANTS = [
    ("axes = tuple(range(lead)) + kept", "axes = kept", "only an input with fewer dimensions fails"),
    ("axes = tuple(range(lead)) + kept", "axes = tuple(range(lead))", "only size-1 axes fail"),
    ("summed = grad.sum(axis=axes, keepdims=True) if axes else grad",
     "summed = grad.mean(axis=axes, keepdims=True) if axes else grad", "a mean where the gradient needs a sum"),
]
