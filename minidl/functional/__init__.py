"""PyTorch-shaped functions (``import minidl.functional as F``).

One module per family; each function checks and normalises its arguments,
raising a clear error that names the function, the argument and the shapes,
then calls an op from ``minidl.ops`` where the math and its gradient live.
"""
from .activation import relu, sigmoid, tanh
from .linear import linear
