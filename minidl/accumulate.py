r"""Summing the gradients that reach a node, and a leaf's ``.grad``: the engine's memory rule.

A node used twice receives two gradients, and the multivariate chain rule adds them. Adding
*in place* saves an array, but it writes into whichever array holds the first gradient, and
that array belongs to whoever made it: a backward may return ``dy`` itself (``Add`` returns
it for both inputs), a view of it, or an array it keeps (a student's ``backward`` that
returns a saved array). Writing into any of those changes someone else's numbers.

The rule, which needs no promise from any backward:

    The engine writes into a gradient array in place only when it allocated that array
    itself in this backward pass. Anything a backward returns is BORROWED.

So :class:`GradientSums` keeps a node's first gradient as it is (borrowed, never written),
allocates a new array for the first sum (now the engine's own), and adds later gradients into
that one. A leaf's ``.grad`` is always an array the engine made: the first gradient is copied
into it, later ones are added to it in place (as PyTorch accumulates ``.grad``).
New arrays come from the allocator (minidl/backend/allocator.py) so that large sums and
``.grad`` copies reuse memory instead of touching fresh pages every step.
"""
from .backend import allocator, array_module


class GradientSums:
    """dL/d(output) of every node still waiting for its backward, summed as gradients arrive.

    Keys are ``(node, output_nr)``: a node with several outputs has one sum per output.
    """

    def __init__(self):
        self._total = {}
        self._ours = set()  # keys whose total the engine allocated itself (in-place adds allowed)

    def add(self, key, g):
        total = self._total.get(key)
        if total is None:
            self._total[key] = g  # borrowed: kept as it is, never written into
        elif key in self._ours:
            total += g  # ours: add in place
        else:
            self._total[key] = _new_sum(total, g)  # both borrowed: the sum is a new array, ours
            self._ours.add(key)

    def keys(self):
        """The keys that hold a gradient now, in the order their first gradient arrived."""
        return list(self._total)

    def pop(self, key):
        """The summed gradient of ``key`` (None if none arrived); the engine lets go of it."""
        self._ours.discard(key)
        return self._total.pop(key, None)


def _new_sum(a, b):
    xp = array_module(a)
    return xp.add(a, b, out=allocator.empty(a.shape, a.dtype, xp))


# minidl.tensor.Tensor, handed over by tensor.py (which imports autograd, which imports this module)
Tensor = None


def accumulate_into_leaf(leaf, g):
    """``leaf.grad += g``, where the first gradient is copied (``g`` is borrowed). The engine has
    already given ``g`` the leaf's shape and dtype (autograd._walk_graph), so the ``.grad``
    setter's checks are skipped."""
    if leaf._grad is None:
        xp = array_module(g)
        copy = allocator.empty(g.shape, g.dtype, xp)
        copy[...] = g
        leaf._grad = Tensor(copy)
    else:
        leaf.grad._data += g  # the user-visible accumulator, in place as in PyTorch
        leaf.grad._version_counter.bump()
