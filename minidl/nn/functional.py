"""``minidl.nn.functional``: the same functions as ``minidl.functional``, under PyTorch's name
(``import minidl.nn.functional as F``)."""
from ..functional import *  # noqa: F401,F403
