r"""Numerical gradient checking: compare backward() with finite differences.

Every op in minidl has a hand-written backward. ``gradcheck`` is how we know
those backwards are right: it measures the Jacobian of a function twice, once
with autograd and once with nothing but forward evaluations, and compares.

The analytical Jacobian (what backward computes)
    For a function y = f(x), backward with an upstream gradient ``dy`` returns
    the vector-Jacobian product  dx = J^T dy,  J[j, k] = d y_j / d x_k.
    Choosing dy = e_j (one-hot: 1 at output element j, 0 elsewhere) gives
    row j of J. One backward per output element builds the whole matrix.

The numerical Jacobian (central differences)
    Column k of J is the derivative of y with respect to x_k alone:

        J[:, k]  ~=  ( f(x + eps*e_k) - f(x - eps*e_k) ) / (2*eps)

    Taylor-expanding f(x +- eps*e_k) = f(x) +- eps*f' + eps^2/2*f'' +- eps^3/6*f'''
    shows that the f'' terms cancel, so the truncation error is
    eps^2/6 * f''' = O(eps^2). (The one-sided difference (f(x+eps)-f(x))/eps
    keeps the f'' term: its error is only O(eps).)

Why float64
    Each evaluation of f is rounded to about machine_eps * |f| (relative),
    and dividing by 2*eps magnifies that rounding error to roughly
    machine_eps * |f| / eps. Total error ~ eps^2 + machine_eps/eps.
      float64: machine_eps ~ 1.1e-16, eps = 1e-6 -> ~1e-12 + 1e-10: a clean
               ~10 significant digits, far below atol=1e-5.
      float32: machine_eps ~ 6e-8,    eps = 1e-6 -> rounding error ~6e-2:
               the "numerical" derivative is noise. (The best eps for float32
               is ~(6e-8)^(1/3) ~ 4e-3, which still leaves only ~5e-5.)
    So: always gradcheck in float64. A warning is issued for other dtypes.

How to read a failure
    The error names the input (its position in ``inputs``), the element of
    that input, the output element, and both values. Typical patterns:
      * analytical 0, numerical not 0 -> the gradient never reaches this
        input (detached, computed under no_grad, or backward returned None);
      * analytical = c * numerical for a constant c (2, 0.5, -1, ...) -> a
        wrong factor or sign in the backward formula;
      * only some elements differ -> an indexing, transpose, broadcasting or
        reduction-axis mistake: look at which indices fail;
      * small, erratic differences -> not a backward bug but a bad check:
        float32 inputs, or x sits at a kink (relu/abs at 0, max with ties),
        where the derivative does not exist. Draw inputs away from kinks.

Fast mode
    The full check costs one backward per output element and two forwards per
    input element. ``fast_mode=True`` checks a single random projection
    instead: with random unit vectors u (one per input, the shape of that
    input) and v (over all outputs),

        analytical  v^T J u = sum_i < backward(v)_i , u_i >        (one backward)
        numerical   v^T J u ~= < f(x + eps*u) - f(x - eps*u), v > / (2*eps)

    A wrong backward almost surely changes v^T J u, so this catches bugs at
    the price of one backward and two forwards; it cannot say WHICH element
    is wrong: rerun with fast_mode=False for that.

Example::

    >>> import minidl
    >>> from minidl.gradcheck import gradcheck
    >>> x = minidl.randn(3, 4, dtype=minidl.float64, requires_grad=True)
    >>> gradcheck(lambda t: (t * t).sum(dim=1), (x,))
    True
"""
from __future__ import annotations

import warnings

import numpy as np

from minidl.autograd import enable_grad, no_grad
from minidl.backend import to_device, to_host
from minidl.tensor import Tensor

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` when backward and finite differences disagree."""


_HOW_TO_READ = (
    "How to read this: 'analytical' is what backward() computed, 'numerical' is the "
    "central difference (f(x+eps) - f(x-eps)) / (2*eps). Analytical 0 with numerical "
    "non-zero: the gradient does not reach this input. A constant ratio between them: "
    "a wrong factor or sign in backward. Only some elements wrong: an indexing, "
    "transpose, broadcasting or reduction-axis bug. Small erratic differences: "
    "inputs not float64, or x sits at a kink (relu/abs at 0, max with ties)."
)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False,
              raise_exception=True):
    r"""Check the gradients of ``fn`` at ``inputs`` against central differences.

    Args:
        fn: callable, ``fn(*inputs)`` returns a Tensor or a tuple of Tensors.
        inputs: a Tensor or a tuple of values. Tensors with ``requires_grad``
            are checked; every other value is passed through unchanged.
        eps: finite-difference step. The truncation error is O(eps^2), the
            rounding error ~ machine_eps / eps (see the module docstring).
        atol, rtol: an entry passes when |analytical - numerical|
            <= atol + rtol * |numerical|.
        fast_mode: check one random projection v^T J u instead of all of J.
        raise_exception: raise :class:`GradcheckError` on failure (default);
            if False, return False instead.

    Returns:
        True if every checked entry agrees.

    The inputs' values and ``.grad`` are the same after the call as before,
    even when ``fn`` raises.
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked, seen = [], set()       # (position, tensor); a tensor passed twice is checked once
    for pos, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and id(x) not in seen:
            checked.append((pos, x))
            seen.add(id(x))
    if not checked:
        raise ValueError("gradcheck: no input is a Tensor with requires_grad=True; "
                         "nothing to check")
    for pos, x in checked:
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"gradcheck: input {pos} requires grad but has dtype {x.dtype}; "
                            "only floating-point inputs can be differentiated")
        if x.dtype != np.float64:
            warnings.warn(f"gradcheck: input {pos} has dtype {x.dtype}, not float64. With "
                          f"eps={eps} the finite differences are dominated by rounding "
                          "error (~machine_eps/eps); expect spurious failures.",
                          UserWarning, stacklevel=2)

    saved_data = [x._data.copy() for _, x in checked]
    saved_grad = [x.grad for _, x in checked]
    try:
        if fast_mode:
            failure = _check_projection(fn, inputs, checked, eps, atol, rtol)
        else:
            failure = _check_full(fn, inputs, checked, eps, atol, rtol)
    finally:
        for (_, x), data, grad in zip(checked, saved_data, saved_grad):
            x._data[...] = data
            x.grad = grad

    if failure is None:
        return True
    if raise_exception:
        raise GradcheckError(failure)
    return False


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _host64(array):
    """A float64 NumPy copy of a device array (the checker's bookkeeping runs on the host)."""
    return np.array(to_host(array), dtype=np.float64)


def _outputs(fn, inputs):
    """Call fn and return its outputs as a tuple of Tensors."""
    out = fn(*inputs)
    outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors; "
                            f"output {k} is {type(o).__name__}")
    return outs


def _flat_values(fn, inputs):
    """fn(*inputs) under no_grad, all outputs flattened into one float64 vector."""
    with no_grad():
        outs = _outputs(fn, inputs)
    return np.concatenate([_host64(o._data).reshape(-1) for o in outs])


def _output_element(outs, j):
    """Name flat output index j as 'output k, element (i0, i1, ...)'."""
    for k, o in enumerate(outs):
        if j < o._data.size:
            return f"output {k} element {tuple(int(i) for i in np.unravel_index(j, o.shape))}"
        j -= o._data.size
    raise IndexError(j)  # unreachable: j < total size


def _grad_of(pos, x):
    """x.grad as a float64 array (zeros when backward did not reach x)."""
    if x.grad is None:
        return np.zeros(x.shape)
    g = _host64(x.grad._data if isinstance(x.grad, Tensor) else np.asarray(x.grad))
    if g.shape != tuple(x.shape):
        raise GradcheckError(f"backward produced a gradient of shape {g.shape} for input "
                             f"{pos} of shape {tuple(x.shape)}; a gradient must have its "
                             "input's shape (was broadcasting undone?)")
    return g


def _backward_outputs(outs, upstream):
    """Backward from every output that is part of the graph, each with its dy."""
    for o, dy in zip(outs, upstream):
        if o.requires_grad:
            o.backward(gradient=Tensor(to_device(dy.astype(o.dtype), o.device)), retain_graph=True)


def _check_deterministic(fn, inputs, outs, atol):
    """Finite differences assume fn is a function: same x, same y (no dropout)."""
    again = _flat_values(fn, inputs)
    first = np.concatenate([_host64(o._data).reshape(-1) for o in outs])
    if not np.allclose(first, again, rtol=1e-10, atol=atol * 1e-3):
        raise GradcheckError("gradcheck: fn gave different outputs for the same inputs "
                             "(random ops such as dropout?); finite differences need a "
                             "deterministic function")


def _check_full(fn, inputs, checked, eps, atol, rtol):
    """Compare the full Jacobians; return a failure message or None."""
    # Analytical: one backward per output element, dy one-hot.  J_a[i] is (M, n_i).
    with enable_grad():
        outs = _outputs(fn, inputs)
    sizes = [o._data.size for o in outs]
    total = sum(sizes)
    jac_a = [np.zeros((total, x._data.size)) for _, x in checked]
    row = 0
    for k, o in enumerate(outs):
        for j in range(sizes[k]):
            onehot = np.zeros(o.shape)
            onehot.reshape(-1)[j] = 1.0
            for _, x in checked:
                x.grad = None
            _backward_outputs([o], [onehot])
            for c, (pos, x) in enumerate(checked):
                jac_a[c][row] = _grad_of(pos, x).reshape(-1)
            row += 1
    _check_deterministic(fn, inputs, outs, atol)

    # Numerical: two forwards per input element, central difference.  J_n[i] is (M, n_i).
    for c, (pos, x) in enumerate(checked):
        jac_n = np.zeros_like(jac_a[c])
        for e in range(x._data.size):
            idx = np.unravel_index(e, x.shape)
            orig = x._data[idx].copy()
            x._data[idx] = orig + eps
            f_plus = _flat_values(fn, inputs)
            x._data[idx] = orig - eps
            f_minus = _flat_values(fn, inputs)
            x._data[idx] = orig
            jac_n[:, e] = (f_plus - f_minus) / (2 * eps)

        a, n = jac_a[c], jac_n
        excess = np.abs(a - n) - (atol + rtol * np.abs(n))
        bad = excess > 0
        if bad.any():
            out_j, in_e = np.unravel_index(np.argmax(excess), excess.shape)
            elem = tuple(int(i) for i in np.unravel_index(in_e, x.shape))
            return (f"gradcheck failed for input {pos} (shape {tuple(x.shape)}) at element "
                    f"{elem}, {_output_element(outs, out_j)}: "
                    f"analytical {a[out_j, in_e]:.10g} vs numerical {n[out_j, in_e]:.10g} "
                    f"(|diff| {abs(a[out_j, in_e] - n[out_j, in_e]):.3g} > "
                    f"atol + rtol*|numerical| = {atol + rtol * abs(n[out_j, in_e]):.3g}). "
                    f"{int(bad.sum())} of {bad.size} Jacobian entries of this input differ; "
                    f"this is the worst one.\n{_HOW_TO_READ}")
    return None


def _check_projection(fn, inputs, checked, eps, atol, rtol):
    """Compare v^T J u for random unit u, v; return a failure message or None."""
    # A private, fixed-seed generator: the check is reproducible and leaves the
    # global minidl random stream untouched.
    rng = np.random.default_rng(0)

    def unit(shape):
        r = rng.standard_normal(shape)
        return r / max(np.linalg.norm(r), 1e-300)

    us = [unit(x.shape) for _, x in checked]

    # Analytical: backward with dy = v (split over the outputs) gives J^T v.
    with enable_grad():
        outs = _outputs(fn, inputs)
    v_flat = unit(sum(o._data.size for o in outs))
    vs, start = [], 0
    for o in outs:
        vs.append(v_flat[start:start + o._data.size].reshape(o.shape))
        start += o._data.size
    for _, x in checked:
        x.grad = None
    _backward_outputs(outs, vs)
    analytical = sum(float(np.sum(_grad_of(pos, x) * u)) for (pos, x), u in zip(checked, us))
    _check_deterministic(fn, inputs, outs, atol)

    # Numerical: move every input along its u at once.
    originals = [_host64(x._data) for _, x in checked]
    for (_, x), x0, u in zip(checked, originals, us):
        x._data[...] = to_device((x0 + eps * u).astype(x.dtype), x.device)
    f_plus = _flat_values(fn, inputs)
    for (_, x), x0, u in zip(checked, originals, us):
        x._data[...] = to_device((x0 - eps * u).astype(x.dtype), x.device)
    f_minus = _flat_values(fn, inputs)
    for (_, x), x0 in zip(checked, originals):
        x._data[...] = to_device(x0.astype(x.dtype), x.device)
    numerical = float(np.dot(f_plus - f_minus, v_flat) / (2 * eps))

    if abs(analytical - numerical) > atol + rtol * abs(numerical):
        names = ", ".join(str(pos) for pos, _ in checked)
        return (f"gradcheck (fast_mode) failed for inputs ({names}): the projection "
                f"v^T J u with random unit vectors is analytical {analytical:.10g} vs "
                f"numerical {numerical:.10g} (|diff| {abs(analytical - numerical):.3g} > "
                f"{atol + rtol * abs(numerical):.3g}). Rerun with fast_mode=False to find "
                f"the input and element that differ.\n{_HOW_TO_READ}")
    return None
