"""The reverse-mode walk of a graph: topological order and backward (your solution)."""
import numpy as np


class Node:
    """One value of the graph: ``value`` (an array), the ``parents`` it was computed from, the
    local ``backward(dy) -> one gradient per parent`` of the op that made it, and ``grad``."""

    def __init__(self, value, parents=(), backward=None):
        self.value = value
        self.parents = parents
        self._backward = backward
        self.grad = None

    def backward(self, dy):
        """dL/d(each parent) from dy = dL/d(this node): a tuple, one entry per parent."""
        return self._backward(dy) if self._backward is not None else ()


# The ops (given): every input and output has the same shape.
def add(a, b):
    return Node(a.value + b.value, (a, b), lambda dy: (dy, dy))


def mul(a, b):
    return Node(a.value * b.value, (a, b), lambda dy: (dy * b.value, dy * a.value))


def tanh(a):
    y = np.tanh(a.value)
    return Node(y, (a,), lambda dy: (dy * (1 - y * y),))


def exp(a):
    y = np.exp(a.value)
    return Node(y, (a,), lambda dy: (dy * y,))


def topological_order(output):
    """Every node reachable from ``output``, each once, each after every node that uses it
    (``output`` first, the inputs last): the reversed post-order of a depth-first search."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION


def backward(output, dy):
    """Set ``output.grad = dy`` and give every node reachable from ``output`` its ``grad``,
    dL/d(node), of the node's shape: the SUM over all the uses of the node."""
    # BEGIN YOUR SOLUTION
    raise NotImplementedError
    # END YOUR SOLUTION
