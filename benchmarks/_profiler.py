"""Where minidl's time goes: self time of every op and kernel, without a sampling profiler.

Inside ``with OpProfiler() as prof:`` these are replaced by timing wrappers:
  * ``forward`` and ``backward`` of every :class:`minidl.autograd.Function` subclass
    (found through ``__subclasses__``, recursively; a method is wrapped in the class that
    defines it, and its time is filed under the class of the object it runs on);
  * every public function of every CPU kernel module (``minidl.backend.kernel_module``:
    im2col, col2im, pooling kernels, ...), looked up through the module at call time by
    the ops (``kernels_for(x).im2col``), so replacing the module attribute reaches them;
  * ``step`` and ``zero_grad`` of every optimizer class.
On exit the originals are put back.

No double counting: each wrapper measures its call's total time and subtracts the time
of the wrapped calls nested inside it (a stack of child totals), so every second is filed
exactly once under the innermost wrapped call that was running: its SELF time. A conv's
``forward`` self time is therefore its matrix products, layout copies and bias add; the
im2col inside it is filed under the kernel.

Categories (:func:`category`):
  matrix products   self time of Conv2d / ConvTranspose2d / Linear / MatMul ops: the BLAS
                    products plus the padding copy and bias add around them, which these
                    ops do inline; and the direct convolution kernels (direct_conv2d*), which
                    do the same multiply-adds without BLAS
  im2col/tiles      the kernels that lay a convolution out for its matrix products: im2col,
                    col2im, the shifted rows (stack_shifted_rows) and the Winograd tile
                    transforms (winograd_*)
  pooling           pooling kernels and the self time of the pooling ops
  elementwise       every other op (activations, loss, softmax, cat, pad, arithmetic),
                    other kernels, and the optimizer (Adam's update, zero_grad)
  Python overhead   step wall time minus all of the above: module calls, Function.apply
                    (graph recording, Tensor creation), the autograd walk (topological order,
                    broadcasting sums, gradient accumulation), and this profiler's wrappers
"""
import functools
import time
from collections import defaultdict

import minidl
import minidl.optim
from minidl.autograd import Function
from minidl.backend import available_backends, kernel_module

CATEGORIES = ("matrix products", "im2col/tiles", "pooling", "elementwise", "Python overhead")
_MATMUL_OPS = ("Conv", "Linear", "MatMul")


def all_subclasses(cls):
    """Every subclass of ``cls``, at any depth, each once."""
    seen, todo = [], list(cls.__subclasses__())
    while todo:
        sub = todo.pop()
        if sub not in seen:
            seen.append(sub)
            todo.extend(sub.__subclasses__())
    return seen


def category(kind, name):
    """The category of a wrapped call: ``kind`` is "op", "kernel" or "optimizer"."""
    if kind == "kernel":
        if name.startswith("direct_conv2d"):
            return "matrix products"
        if "im2col" in name or "col2im" in name or name.startswith(("winograd", "stack_shifted_rows")):
            return "im2col/tiles"
        return "pooling" if "pool" in name else "elementwise"
    if kind == "op":
        if any(name.startswith(prefix) for prefix in _MATMUL_OPS):
            return "matrix products"
        if "Pool" in name:
            return "pooling"
    return "elementwise"


class OpProfiler:
    """Self time and call count of every op, kernel and optimizer call (module docstring).

    ``self_time[(kind, name)]`` is in seconds, e.g. ``("op", "Conv2d.backward")`` or
    ``("kernel", "im2col")``; ``calls`` holds the matching counts.
    """

    def __init__(self):
        self.self_time = defaultdict(float)
        self.calls = defaultdict(int)
        self._open = []  # one entry per running wrapped call: seconds spent in its wrapped children
        self._patched = []  # (owner, attribute, original), to restore on exit

    # ---- wrapping -------------------------------------------------------------------------
    def _wrap(self, fn, kind, name_of):
        open_calls, self_time, calls = self._open, self.self_time, self.calls

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            open_calls.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                total = time.perf_counter() - start
                children = open_calls.pop()
                key = (kind, name_of(args))
                self_time[key] += total - children  # only the time not spent in wrapped children
                calls[key] += 1
                if open_calls:
                    open_calls[-1] += total  # the caller must not count this call again

        return timed

    def _patch(self, owner, attribute, kind, name_of):
        original = getattr(owner, attribute) if not isinstance(owner, type) else owner.__dict__[attribute]
        setattr(owner, attribute, self._wrap(original, kind, name_of))
        self._patched.append((owner, attribute, original))

    def __enter__(self):
        for cls in all_subclasses(Function):
            for method in ("forward", "backward"):
                if method in cls.__dict__:  # wrap where defined: inherited methods are covered there
                    self._patch(cls, method, "op",
                                lambda args, m=method: f"{type(args[0]).__name__}.{m}")
        for backend in available_backends():
            module = kernel_module(backend)
            for name, value in list(vars(module).items()):
                if (not name.startswith("_") and callable(value) and not isinstance(value, type)
                        and getattr(value, "__module__", None) == module.__name__):
                    self._patch(module, name, "kernel", lambda args, n=name: n)
        for cls in [minidl.optim.Optimizer] + all_subclasses(minidl.optim.Optimizer):
            for method in ("step", "zero_grad"):
                if method in cls.__dict__:
                    self._patch(cls, method, "optimizer",
                                lambda args, m=method: f"{type(args[0]).__name__}.{m}")
        return self

    def __exit__(self, *exc_info):
        for owner, attribute, original in reversed(self._patched):
            setattr(owner, attribute, original)
        self._patched.clear()
        return False

    # ---- results --------------------------------------------------------------------------
    def reset(self):
        self.self_time.clear()
        self.calls.clear()

    def by_category(self, wall_seconds):
        """{category: seconds} for a block that took ``wall_seconds``; sums to it."""
        out = dict.fromkeys(CATEGORIES, 0.0)
        for (kind, name), seconds in self.self_time.items():
            out[category(kind, name)] += seconds
        out["Python overhead"] = wall_seconds - sum(out.values())
        return out

    def rows(self):
        """[(kind, name, category, seconds, calls)], the largest self time first."""
        return sorted(((kind, name, category(kind, name), s, self.calls[(kind, name)])
                       for (kind, name), s in self.self_time.items()), key=lambda r: -r[3])


def wrapper_cost_seconds(calls=20000):
    """Seconds one wrapped call adds (measured on a no-op), to size the profiler's own cost."""
    prof = OpProfiler()
    noop = prof._wrap(lambda: None, "op", lambda args: "noop")
    start = time.perf_counter()
    for _ in range(calls):
        noop()
    wrapped = time.perf_counter() - start
    start = time.perf_counter()
    plain = (lambda: None)
    for _ in range(calls):
        plain()
    return max(0.0, (wrapped - (time.perf_counter() - start)) / calls)
