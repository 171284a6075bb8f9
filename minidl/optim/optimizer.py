r"""The :class:`Optimizer` base class: parameter groups, per-parameter state, checkpoints.

An optimizer owns two things:

* ``param_groups``: a list of dicts. Each holds ``'params'`` (a list of the
  Tensors it updates) and that group's hyperparameters (``'lr'``, ...). Groups
  let one model use, say, a smaller learning rate for its pretrained layers.
* ``state``: a dict keyed by the parameter object itself (Tensors hash by
  identity) holding what the update rule remembers between steps, e.g. the
  momentum buffer of SGD or the moment estimates of Adam, as NumPy arrays.

A subclass chooses the defaults, checks them, and writes ``step()``. Every
update works on raw arrays (``p._data``, ``p.grad._data``) in place, so the
optimizer is invisible to autograd: updating a weight is not part of the graph,
exactly as PyTorch runs ``step()`` under ``torch.no_grad()``. Each updated
parameter's version counter is incremented, as PyTorch's in-place updates do:
a graph built before ``step()`` that saved a parameter refuses to backward.

``state_dict()`` / ``load_state_dict()`` use PyTorch's layout, with parameters
replaced by their position in the groups (0, 1, 2, ... in group order) and the
arrays as host NumPy copies (``load_state_dict`` puts them on each parameter's device)::

    {'state':        {0: {'momentum_buffer': ndarray}, 1: {...}, ...},
     'param_groups': [{'lr': 0.1, 'momentum': 0.9, ..., 'params': [0, 1]},
                      {'lr': 0.01, ...,                  'params': [2]}]}
"""

import copy
import math
import numbers
from collections import defaultdict

import numpy as np

from ..autograd import enable_grad
from ..backend import array_module, is_array, to_device, to_host
from ..tensor import Tensor

__all__ = ["Optimizer"]


class Optimizer:
    r"""Base class of all optimizers.

    Args:
        params: an iterable of Tensors (one group), or of dicts, each with a
            ``'params'`` entry and any per-group options that override
            ``defaults``, e.g. ``[{'params': body}, {'params': head, 'lr': 1e-2}]``.
        defaults: the default value of every hyperparameter of the subclass.

    Subclasses implement :meth:`step` and may override :meth:`_check_options`,
    which validates one group's hyperparameters before the group is accepted.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self._check_options(self.defaults, where="")
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params should be an iterable of Tensors or dicts, "
                f"but got a single Tensor of shape {tuple(params.shape)}; wrap it in a list"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(self._set_message())
        self.state = defaultdict(dict)   # parameter -> {name: ndarray or number}
        self.param_groups = []           # [{'params': [Tensor, ...], 'lr': ..., ...}, ...]
        self._scratch = {}               # (slot, shape, dtype) -> reusable work array (not state)

        groups = list(params)
        if len(groups) == 0:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups

    def add_param_group(self, param_group):
        r"""Add a group of parameters (with its own options) to ``param_groups``.

        Options the group does not set are taken from ``defaults``. Everything
        is checked before the group is added, so a bad group changes nothing.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: param_group has no 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(self._set_message())
        else:
            params = list(params)
        index = len(self.param_groups)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name} can only optimize Tensors, but parameter {i} of group {index} "
                    f"is a {type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (parameter {i} of group {index})")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: param group {index} contains the same parameter more than once")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")

        group = {k: v for k, v in param_group.items() if k != "params"}
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._check_options(group, where=f" (param group {index})")
        group["params"] = params
        self.param_groups.append(group)

    @staticmethod
    def _set_message():
        return ("optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead.")

    # State entries kept as Python floats (PyTorch saves them as 0-d tensors).
    _scalar_state = ("step",)
    # Options a saved group may lack (they came later): loading gives them the default.
    _optional_options = ()

    def _required_state(self, group):
        """The state entries a parameter that has taken a step must have (a subclass says)."""
        return ()

    def _check_options(self, options, where):
        """Raise ValueError for a bad hyperparameter; ``where`` names the group."""
        if "lr" in options:
            self._check_nonnegative(options, "lr", "learning rate", where)

    def _check_nonnegative(self, options, key, what, where):
        """Shared check: ``options[key]`` is a real number >= 0 (NaN fails)."""
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{type(self).__name__}{where}: {key} must be a real number, "
                            f"got {type(value).__name__}")
        if not 0.0 <= value:
            raise ValueError(f"{type(self).__name__}{where}: Invalid {what}: {value} "
                             f"({key} must be >= 0)")

    def _check_betas(self, options, where):
        """Shared check: ``options['betas']`` is a pair of real numbers in [0, 1)."""
        name = type(self).__name__
        betas = options["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}{where}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
                raise TypeError(f"{name}{where}: betas[{i}] must be a real number, got {type(beta).__name__}")
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name}{where}: Invalid beta parameter at index {i}: {beta} "
                                 f"(betas[{i}] must be in [0, 1))")

    # -------------------------------------------------------------- gradients

    def zero_grad(self, set_to_none=True):
        r"""Forget the gradients of all parameters before the next ``backward()``.

        ``set_to_none=True`` (default) sets ``p.grad = None``, so ``step()``
        skips parameters that receive no new gradient; ``False`` writes zeros
        into the existing gradient arrays instead (they are then updated with
        a zero gradient, which still moves them under momentum or weight decay).
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad._data[...] = 0
                    p.grad._version_counter.bump()

    def _params_with_grads(self):
        r"""``[(group, [(param, grad_array), ...]), ...]`` for parameters that have a gradient.

        Every gradient's shape is checked before any parameter is touched, so a
        wrong gradient leaves the whole model and optimizer unchanged.
        """
        out = []
        for g_index, group in enumerate(self.param_groups):
            pairs = []
            for p_index, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                grad = p.grad._data
                if grad.shape != p.shape:
                    raise ValueError(
                        f"{type(self).__name__}.step: parameter {p_index} of group {g_index} has shape "
                        f"{p.shape} but its gradient has shape {grad.shape}"
                    )
                pairs.append((p, grad))
            out.append((group, pairs))
        for _, pairs in out:
            for p, _ in pairs:
                p._version_counter.bump()  # step() will change each of them in place
        self._opt_called = True  # (a scheduler stepped before any optimizer step warns)
        return out

    def _work(self, like, slot):
        r"""A scratch array shaped like ``like``, reused across steps (never part of ``state``).

        Allocating fresh temporaries for every parameter at every step costs
        page faults for large arrays; keeping one per (slot, shape, dtype) does not.
        """
        key = (slot, like.shape, like.dtype, type(like))
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = array_module(like).empty_like(like)
        return buf

    def _effective_grad(self, grad, param, weight_decay, maximize):
        r"""``g = (-grad if maximize else grad) + weight_decay * param``.

        Returns ``grad`` itself when nothing changes it (the usual case: no scratch array
        is made, so plain Adam/SGD keep no second gradient-sized buffer per parameter),
        otherwise writes into a reused scratch array (the caller's gradient array is never
        modified).
        """
        if weight_decay != 0:
            out = self._work(param, "grad")
            array_module(param).multiply(param, weight_decay, out=out)
            if maximize:
                out -= grad
            else:
                out += grad
            return out
        if maximize:
            return array_module(grad).negative(grad, out=self._work(param, "grad"))
        return grad

    def _evaluate(self, closure):
        """Call ``closure`` (which recomputes the loss) with gradients on; return its loss."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def step(self, closure=None):
        r"""Update every parameter that has a gradient. Implemented by subclasses."""
        raise NotImplementedError

    # ----------------------------------------------------------- checkpoints

    def state_dict(self):
        r"""The optimizer's state as a dict of plain values (PyTorch's layout).

        Parameters are replaced by their index in the concatenation of all
        groups' ``params``; arrays are NumPy copies on the host (whatever the
        parameters' device), so later steps do not change a saved state dict and
        it loads on any device.
        """
        index = {}
        param_groups = []
        for group in self.param_groups:
            packed = copy.deepcopy({k: v for k, v in group.items() if k != "params"})
            packed["params"] = []
            for p in group["params"]:
                index[id(p)] = len(index)
                packed["params"].append(index[id(p)])
            param_groups.append(packed)

        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if self.state.get(p):
                    state[index[id(p)]] = {k: _copy_value(v) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": param_groups}

    def load_state_dict(self, state_dict):
        r"""Restore ``state_dict()`` output, so that training resumes exactly.

        The saved groups must have the same number of parameters as this
        optimizer's groups; saved parameter ``i`` is matched to this optimizer's
        parameter ``i`` (in group order), and its state arrays are copied and cast
        to that parameter's dtype. Groups take the saved hyperparameters
        (learning rate included). Everything is validated first: a state dict
        that does not fit raises ValueError and leaves the optimizer unchanged.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys 'state' and "
                             f"'param_groups' (the output of state_dict())")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: loaded state dict has a different number of parameter "
                f"groups ({len(saved_groups)}) than the optimizer ({len(self.param_groups)})"
            )
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if "params" not in saved:
                raise ValueError(f"{name}.load_state_dict: saved param group {i} has no 'params' entry")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: loaded state dict contains a parameter group that "
                    f"doesn't match the size of optimizer's group: saved group {i} has "
                    f"{len(saved['params'])} parameters, the optimizer's group {i} has {len(group['params'])}"
                )
            missing = [key for key in self.defaults if key not in saved and key not in self._optional_options]
            if missing:
                raise ValueError(
                    f"{name}.load_state_dict: saved param group {i} lacks the option(s) {missing} "
                    f"(was it saved by a different optimizer?)"
                )

        # saved index -> this optimizer's parameter, in group order
        id_map = {}
        for group, saved in zip(self.param_groups, saved_groups):
            id_map.update(zip(saved["params"], group["params"]))

        new_state = defaultdict(dict)
        for key, entries in state_dict["state"].items():
            if key not in id_map:
                raise ValueError(f"{name}.load_state_dict: state is saved for parameter index {key!r}, "
                                 f"which is in none of the saved param groups")
            if not isinstance(entries, dict):
                raise ValueError(f"{name}.load_state_dict: state of parameter {key} should be a dict, "
                                 f"got {type(entries).__name__}")
            param = id_map[key]
            group = next(g for g, s in zip(self.param_groups, saved_groups) if key in s["params"])
            missing = sorted(set(self._required_state(group)) - set(entries)) if entries else []
            if missing:
                raise ValueError(f"{name}.load_state_dict: the state of parameter {key} lacks {missing} "
                                 f"(it has {sorted(entries)}); was it saved by another optimizer?")
            new_state[param] = {k: _load_value(name, key, k, v, param, k in self._scalar_state)
                                for k, v in entries.items()}

        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            new_group = copy.deepcopy({k: v for k, v in saved.items() if k != "params"})
            for key in self._optional_options:
                new_group.setdefault(key, self.defaults[key])
            self._check_options(new_group, where=f" (loaded param group {len(new_groups)})")
            new_group["params"] = group["params"]
            new_groups.append(new_group)

        # validation passed: nothing above has touched self
        self.state = new_state
        self.param_groups = new_groups

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"


def _copy_value(value):
    """A copy of one state entry that later steps cannot change (arrays: on the host)."""
    if is_array(value):
        return np.array(to_host(value), copy=True)
    return copy.deepcopy(value)


def _as_array(value):
    """The ndarray behind an array-like state value (ndarray, Tensor, torch tensor), else None."""
    if isinstance(value, Tensor):
        return value._data
    if is_array(value):
        return value
    if hasattr(value, "__array__") and not isinstance(value, numbers.Number):
        return np.asarray(value)
    return None


def _load_value(opt_name, index, key, value, param, scalar):
    r"""Copy one saved state entry for ``param``: arrays cast to its dtype, scalars to float.

    Scalar entries (the step count ``'step'``, NAdam's ``'mu_product'``) stay Python
    floats whatever their saved form (PyTorch saves 0-d tensors), since the update
    rules use them as scalars.
    """
    array = _as_array(value)
    if scalar:
        number = float(array) if array is not None else float(value)
        if not (math.isfinite(number) and (number >= 0 or key != "step")):
            raise ValueError(f"{opt_name}.load_state_dict: parameter {index} has invalid {key} {number}")
        return number
    if array is None:
        return copy.deepcopy(value)
    if array.shape != param.shape:
        raise ValueError(
            f"{opt_name}.load_state_dict: state {key!r} of parameter {index} has shape "
            f"{array.shape} but the parameter has shape {param.shape}"
        )
    dtype = param.dtype if np.issubdtype(param.dtype, np.floating) else array.dtype
    return to_device(np.array(to_host(array), dtype=dtype, copy=True), param.device)
