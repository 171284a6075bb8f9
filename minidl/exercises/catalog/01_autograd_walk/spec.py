"""How `minidl ex check autograd_walk` checks a solution (see minidl/exercises/registry.py)."""
import math

import numpy as np

NAME = "autograd_walk"
TITLE = "backward(): the reverse topological walk that adds up a reused node's gradients"
PREREQUISITES = []
FUNCTIONS = ["topological_order", "backward"]
VALUES = []
INPUTS = ("a", "b", "c")  # the graph's inputs; nodes 0, 1, 2; node k >= 3 is ops[k - 3]; the last is the output
ARITY = {"add": 2, "mul": 2, "tanh": 1, "exp": 1}
REFERENCE = None  # the reference module (set by the grader): its Node and ops replay wrong walks


def evaluate(inputs, config):
    """The forward: every node's value, computed in order (float64)."""
    values = [inputs[name] for name in INPUTS]
    for kind, *args in config["ops"]:
        x = [values[i] for i in args]
        values.append({"add": lambda: x[0] + x[1], "mul": lambda: x[0] * x[1],
                       "tanh": lambda: np.tanh(x[0]), "exp": lambda: np.exp(x[0])}[kind]())
    return values


GRADIENTS = {"d" + name: (name, lambda i, c: evaluate(i, c)[-1], "dout") for name in INPUTS}
VARIANTS = []


def valid(c):
    """Every op's arguments exist, and no value can blow up (|inputs| <= 2: bounds through the ops)."""
    bounds = [2.0] * len(INPUTS)
    for k, (kind, *args) in enumerate(c["ops"]):
        if kind not in ARITY or len(args) != ARITY[kind] or not all(0 <= i < len(INPUTS) + k for i in args):
            return False
        x = [bounds[i] for i in args]
        bounds.append({"add": lambda: x[0] + x[-1], "mul": lambda: x[0] * x[-1], "tanh": lambda: 1.0,
                       "exp": lambda: math.exp(min(x[0], 50.0))}[kind]())
    return bool(c["ops"]) and max(bounds) <= 1e4


def case(ops, shape=(2, 3)):
    return dict(ops=[list(op) for op in ops], shape=list(shape))


def public_cases():
    return [case([("mul", 0, 1)]),                                     # one op
            case([("mul", 0, 0)]),                                     # an input used twice by one op
            case([("add", 0, 1), ("tanh", 3), ("mul", 4, 2)], shape=(5,)),   # a chain
            case([("tanh", 0), ("exp", 3), ("mul", 3, 1), ("add", 4, 5)]),     # a diamond: tanh(a) has two users
            case([("add", 0, 1), ("tanh", 3), ("exp", 3), ("mul", 3, 2), ("add", 4, 5), ("add", 7, 6)],
                 shape=(1,)),                                          # a node with three users
            case([("mul", 0, 1), ("tanh", 2)], shape=(3, 1, 2))]       # an input the output does not use


def reuse_cases():
    """Graphs whose nodes are used several times: inside a node (x*x), by two nodes (a diamond),
    by three, and a chain of diamonds where a wrong order loses the gradient of every level."""
    return [case([("tanh", 0), ("mul", 3, 3), ("add", 4, 3)]),
            case([("add", 0, 1), ("tanh", 3), ("exp", 3), ("add", 4, 5), ("mul", 6, 3)]),
            case([("tanh", 0), ("exp", 3), ("tanh", 3), ("mul", 3, 1), ("add", 4, 5), ("add", 7, 6), ("mul", 8, 2)]),
            case([("tanh", 0), ("tanh", 3), ("exp", 3), ("add", 4, 5), ("tanh", 6), ("mul", 6, 6), ("add", 7, 8)],
                 shape=(4,))]


def random_graph(raw, shape):
    """ops from hypothesis' raw draws: argument r picks the node r back from the newest (small r
    reuses recent nodes, so most nodes feed the output and many are used twice)."""
    ops = []
    for kind, r, s in raw:
        n = len(INPUTS) + len(ops)
        ops.append([kind, n - 1 - r % n] + ([n - 1 - s % n] if ARITY[kind] == 2 else []))
    return case(ops, shape)


def configs():
    from hypothesis import strategies as st
    op = st.tuples(st.sampled_from(sorted(ARITY)), st.integers(0, 4), st.integers(0, 6))
    return st.builds(random_graph, st.lists(op, min_size=1, max_size=8),
                     st.lists(st.integers(1, 4), min_size=1, max_size=3))


def make(config, rng):
    shape = tuple(config["shape"])
    inputs = {name: np.clip(rng.standard_normal(shape), -2, 2) for name in INPUTS}
    return dict(inputs, dout=rng.standard_normal(shape), config=config)


def build(module, inputs, config):
    """The graph of ``config`` made of ``module``'s Nodes: (the inputs' nodes, the output node)."""
    nodes = [module.Node(inputs[name]) for name in INPUTS]
    for kind, *args in config["ops"]:
        nodes.append(getattr(module, kind)(*[nodes[i] for i in args]))
    return nodes[:len(INPUTS)], nodes[-1]


def run(module, inputs):
    leaves, output = build(module, inputs, inputs["config"])
    module.backward(output, inputs["dout"])
    return {"d" + name: (leaf.grad if leaf.grad is not None else np.zeros_like(leaf.value))
            for name, leaf in zip(INPUTS, leaves)}


# ---- diagnose: replay the classic wrong walks and see which one the student's numbers match ----

def _order(output, kind, visited_set=True, flip=False):
    """The nodes in the walk's order: "topological" (reversed post-order), "pre" (pre-order)
    or "post" (post-order, not reversed); without a visited set a node comes once per path."""
    order, visited, stack = [], set(), [(output, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if visited_set and node in visited:
            continue
        visited.add(node)
        if kind == "pre":
            order.append(node)
        else:
            stack.append((node, True))
        stack += [(p, False) for p in (reversed(node.parents) if flip else node.parents)]
    return order[::-1] if kind == "topological" else order


def _walk(module, inputs, config, add=True, **order):
    leaves, output = build(module, inputs, config)
    walk = _order(output, **order)
    for node in walk:
        node.grad = np.zeros_like(node.value)
    output.grad = inputs["dout"]
    for node in walk:
        for parent, g in zip(node.parents, node.backward(node.grad)):
            parent.grad = parent.grad + g if add else g
    return {"d" + name: leaf.grad for name, leaf in zip(INPUTS, leaves)}


WRONG_WALKS = [
    (dict(kind="pre"), "a node's gradient was passed on before all its users had added to it: walk in "
     "reverse topological order (the reversed post-order of a DFS)"),
    (dict(kind="post"), "a node's gradient was passed on before all its users had added to it: walk in "
     "reverse topological order (the output first: reverse the post-order)"),
    (dict(visited_set=False), "a node visited twice: its gradient was passed on twice (counted twice): "
     "keep a visited set so each node is in the order once"),
    (dict(add=False), "a node used twice must ADD its gradients (+=, not =): each use contributes one term"),
]  # (a wrong order that loses a user's term looks like = on some graphs: tried first)


def diagnose(output, got, want, inputs, config):
    for options, meaning in WRONG_WALKS:
        for flip in (False, True):  # (either order of a node's parents)
            walk = dict(kind="topological", visited_set=True, add=True, flip=flip)
            walk.update(options)
            add = walk.pop("add")
            wrong = _walk(REFERENCE, inputs, config, add=add, **walk)[output]
            if np.allclose(got, wrong, rtol=1e-9, atol=1e-12):
                return meaning
    return None


SPECIAL_FIRST = True


def overrides(student):
    """minidl's backward orders its graph with minidl.autograd._topological_order(root_fn): the
    student's topological_order replaces it, seeing each Function as a node whose parents are the
    Functions its inputs came from (leaf tensors are not nodes: their gradient is accumulated)."""
    import minidl.autograd as autograd

    library = autograd._topological_order

    def order(root):
        nodes = {}

        class FunctionNode:
            def __init__(self, fn):
                self.fn = fn

            @property
            def parents(self):
                return tuple(node(edge[0]) for edge in self.fn.next_functions
                             if edge is not None and isinstance(edge[0], autograd.Function))

        def node(fn):
            if id(fn) not in nodes:
                nodes[id(fn)] = FunctionNode(fn)
            return nodes[id(fn)]

        functions = [n.fn for n in student.topological_order(node(root))]
        if any(fn._freed for fn in functions):
            return library(root)  # (raises the library's error: backward through a freed graph)
        return functions

    return [(autograd, "_topological_order", order)]


def engine(minidl, inputs):
    """minidl's own backward on the same graph (tensors, minidl ops): the inputs' .grad."""
    c = inputs["config"]
    leaves = [minidl.tensor(inputs[name], requires_grad=True) for name in INPUTS]
    values = list(leaves)
    for kind, *args in c["ops"]:
        x = [values[i] for i in args]
        values.append({"add": lambda: x[0] + x[1], "mul": lambda: x[0] * x[1],
                       "tanh": lambda: x[0].tanh(), "exp": lambda: x[0].exp()}[kind]())
    values[-1].backward(minidl.tensor(inputs["dout"]))
    return {"d" + name: (leaf.grad.numpy() if leaf.grad is not None else np.zeros_like(inputs[name]))
            for name, leaf in zip(INPUTS, leaves)}


MUTANTS = [
    ("parent.grad += g", "parent.grad = g", "must ADD its gradients"),
    ("order.reverse()", "pass", "walk in reverse topological order"),
    ("stack.append((node, True))", "order.insert(0, node)", "walk in reverse topological order"),
    ("if node in visited:", "if False:", "a node visited twice"),
    ("    output.grad = dy\n", "    output.grad = -dy\n", "wrong sign"),
]
