"""The differentiable ops, one file per family.

Each op is a :class:`minidl.autograd.Function` with ``forward`` and
``backward`` side by side over raw arrays; ``minidl.functional`` and the
``Tensor`` methods check arguments and call ``Op.apply``.
"""
