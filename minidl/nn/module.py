"""``Module``: the base class of every layer and model.

A module owns three ordered dictionaries, filled by plain attribute assignment:

    self.weight = Parameter(...)     ->  self._parameters["weight"]
    self.register_buffer("mean", t)  ->  self._buffers["mean"]
    self.fc = Linear(4, 2)           ->  self._modules["fc"]

Everything else (``parameters()``, ``state_dict()``, ``train()``, ``repr``)
is a walk over that tree.  Names are joined with dots, exactly as in PyTorch:
``encoder.0.weight`` is the ``weight`` of child ``0`` of child ``encoder``.

Order matters and follows PyTorch: for each module in depth-first order
(the module itself before its children, children in registration order),
its own parameters come first, then its persistent buffers.
"""

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from .. import dtypes
from ..autograd import VersionCounter, no_grad
from ..backend import device as Device
from ..backend import to_device
from ..backend.devices import cuda_device
from ..hooks import HookDict, add_hook
from ..tensor import Tensor
from .module_hooks import call_with_hooks
from .parameter import Parameter

# Module.__init__ makes one (ordered) dict per kind of hook, and the flags kept beside them
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_backward_pre_hooks",
               "_backward_hooks")

__all__ = ["Module"]


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys that did not line up."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _addindent(text, num_spaces):
    """Indent every line but the first of ``text`` (used by the nested repr)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    first = lines.pop(0)
    lines = [(num_spaces * " ") + line if line.strip() else "" for line in lines]
    return first + "\n" + "\n".join(lines)


class Module:
    r"""Base class for all neural-network modules.

    Subclasses call ``super().__init__()`` first, then assign parameters,
    buffers and submodules as attributes, and implement ``forward``::

        class TwoLayer(Module):
            def __init__(self):
                super().__init__()
                self.fc1 = Linear(4, 8)
                self.fc2 = Linear(8, 2)

            def forward(self, x):               # x (N, 4) -> (N, 2)
                return self.fc2(self.fc1(x).relu())

    Calling the module (``model(x)``) runs ``forward``.
    """

    training: bool

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__() got unexpected arguments "
                f"{args!r} {kwargs!r}; Module.__init__ takes none"
            )
        # object.__setattr__: our own __setattr__ needs these dicts to exist.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        for name in _HOOK_DICTS:  # hooks run by __call__ (module_hooks.py)
            object.__setattr__(self, name, HookDict())

    # ------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args, **kwargs):
        if (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks
                or self._backward_pre_hooks):
            return call_with_hooks(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------
    # hooks (minidl/nn/module_hooks.py runs them)
    # ------------------------------------------------------------------
    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """``hook(module, args)`` (or ``hook(module, args, kwargs)`` with ``with_kwargs``) runs
        before ``forward``; a value it returns replaces ``args`` (or ``(args, kwargs)``)."""
        handle = add_hook(self._forward_pre_hooks, hook, prepend, (self._forward_pre_hooks_with_kwargs,))
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs[handle.id] = True
        return handle

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False, always_call=False):
        """``hook(module, args, output)`` (or ``hook(module, args, kwargs, output)``) runs after
        ``forward``; a value it returns replaces the output. ``always_call``: it runs even when
        ``forward`` raises."""
        extra = (self._forward_hooks_with_kwargs, self._forward_hooks_always_called)
        handle = add_hook(self._forward_hooks, hook, prepend, extra)
        if with_kwargs:
            self._forward_hooks_with_kwargs[handle.id] = True
        if always_call:
            self._forward_hooks_always_called[handle.id] = True
        return handle

    def register_full_backward_pre_hook(self, hook, prepend=False):
        """``hook(module, grad_output)`` runs when the gradients of this call's outputs are known;
        a value it returns replaces ``grad_output``."""
        return add_hook(self._backward_pre_hooks, hook, prepend)

    def register_full_backward_hook(self, hook, prepend=False):
        """``hook(module, grad_input, grad_output)`` runs when the gradients of this call's
        positional inputs are known (None where none flows); a value it returns replaces
        ``grad_input``."""
        return add_hook(self._backward_hooks, hook, prepend)

    # ------------------------------------------------------------------
    # registration
    # ------------------------------------------------------------------
    def _check_new_name(self, kind, name, own_dict):
        """Shared checks of register_parameter / register_buffer / add_module."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if hasattr(self, name) and name not in own_dict:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name, param):
        """Add a parameter (a ``Parameter`` or ``None``) under ``name``.

        A ``None`` parameter is remembered (``self.bias`` reads ``None``) but
        skipped by ``parameters()`` and ``state_dict()``.
        """
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        self._check_new_name("parameter", name, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(minidl.nn.Parameter or None required)"
            )
        if param is not None and param.grad_fn is not None:
            raise ValueError(
                f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters "
                f"must be created explicitly. To express '{name}' as a function of "
                "another Tensor, compute the value in the forward() method."
            )
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a buffer: state that is not trained (e.g. BatchNorm's running mean).

        Persistent buffers are part of ``state_dict()``; non-persistent ones
        are not.  ``tensor`` must be a ``Tensor`` or ``None``.
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_new_name("buffer", name, self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                "(minidl Tensor or None required)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name, module):
        """Add a child module (or ``None``) under ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot assign module before Module.__init__() call")
        self._check_new_name("module", name, self._modules)
        self._modules[name] = module

    def register_module(self, name, module):
        """Alias for :meth:`add_module`."""
        self.add_module(name, module)

    def get_submodule(self, target):
        """The submodule at dotted path ``target`` (``""`` is ``self``)."""
        module = self
        if target == "":
            return module
        for item in target.split("."):
            if not hasattr(module, item):
                raise AttributeError(f"{module._get_name()} has no attribute `{item}`")
            module = getattr(module, item)
            if not isinstance(module, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return module

    def get_parameter(self, target):
        """The parameter at dotted path ``target`` (``"encoder.0.weight"``)."""
        return self._get_registered(target, "_parameters", "an nn.Parameter")

    def get_buffer(self, target):
        """The buffer at dotted path ``target`` (``"bn.running_mean"``)."""
        return self._get_registered(target, "_buffers", "a buffer")

    def _get_registered(self, target, dict_name, what):
        """Shared by get_parameter / get_buffer: the entry ``name`` of ``dict_name`` in the
        submodule at the rest of the dotted path, with PyTorch's errors."""
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if not hasattr(module, name):
            raise AttributeError(f"{module._get_name()} has no attribute `{name}`")
        registered = getattr(module, dict_name)
        if name not in registered:
            raise AttributeError(f"`{name}` is not {what}")
        return registered[name]

    # ------------------------------------------------------------------
    # attribute access: route Parameters / Modules / buffers to their dicts
    # ------------------------------------------------------------------
    def __getattr__(self, name):
        # Only called when normal lookup fails, i.e. for registered names.
        d = self.__dict__
        for dict_name in ("_parameters", "_buffers", "_modules"):
            if dict_name in d and name in d[dict_name]:
                return d[dict_name][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        modules = d.get("_modules")
        buffers = d.get("_buffers")

        def remove_from(*containers):
            for c in containers:
                if name in c:
                    if isinstance(c, dict):
                        del c[name]
                    else:
                        c.discard(name)

        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            remove_from(d, buffers, modules, self._non_persistent_buffers_set)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(minidl.nn.Parameter or None expected)"
                )
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            remove_from(d, params, buffers, self._non_persistent_buffers_set)
            modules[name] = value
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' "
                    "(minidl.nn.Module or None expected)"
                )
            modules[name] = value
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                    "(minidl Tensor or None expected)"
                )
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers_set.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        keys = (
            dir(type(self))
            + list(self.__dict__)
            + list(self._parameters)
            + list(self._modules)
            + list(self._buffers)
        )
        return sorted(k for k in keys if not k[0].isdigit())

    # ------------------------------------------------------------------
    # walking the tree
    # ------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Yield ``(name, module)`` for self and every descendant, depth first.

        A module reachable by two paths is yielded once (at its first path)
        unless ``remove_duplicate=False``.
        """
        if memo is None:
            memo = set()
        if self in memo:
            return
        if remove_duplicate:
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub_prefix = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub_prefix, remove_duplicate)

    def modules(self, remove_duplicate=True):
        for _, module in self.named_modules(remove_duplicate=remove_duplicate):
            yield module

    def named_children(self):
        """Yield ``(name, module)`` for the direct children (each module once)."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, get_members, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(dotted name, tensor)`` for members of every module.

        A tensor shared by two modules (weight tying) is yielded once, under
        its first name.  Tensors are compared by identity (``id``), never by
        ``==``, which is elementwise.
        """
        seen = set()
        if recurse:
            modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
        else:
            modules = [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in get_members(module):
                if value is None or id(value) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(dotted name, Parameter)``; this is the order optimizers see."""
        yield from self._named_members(
            lambda m: m._parameters.items(), prefix, recurse, remove_duplicate
        )

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(dotted name, buffer)`` for persistent and non-persistent buffers."""
        yield from self._named_members(
            lambda m: m._buffers.items(), prefix, recurse, remove_duplicate
        )

    def buffers(self, recurse=True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def apply(self, fn):
        """Call ``fn(module)`` on every child (recursively), then on self; return self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------
    # modes and gradients
    # ------------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode on self and all descendants (Dropout, BatchNorm care); return self."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self):
        """Same as ``self.train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` of every parameter (freeze with ``False``); return self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all parameters: to ``None`` (default) or to zeros."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.zero_()

    # ------------------------------------------------------------------
    # device and dtype: change tensors IN PLACE so that Parameter objects
    # (which an optimizer may already hold) keep their identity.
    # ------------------------------------------------------------------
    def _tensors_in_place(self, convert):
        """Make the array ``convert(t)`` the memory of ``t`` (PyTorch: ``t.data = ...``) for every
        parameter, its grad, and every buffer of every module.  Each tensor is converted once."""
        done = set()

        def update(t):
            if t is None or id(t) in done:
                return
            done.add(id(t))
            array = convert(t)
            if array is not t._data:
                t._data, t._version_counter = array, VersionCounter()  # new memory, new history

        for module in self.modules():
            for p in module._parameters.values():
                if p is not None:
                    update(p)
                    update(p.grad)
            for b in module._buffers.values():
                update(b)
        return self

    def to(self, *args, **kwargs):
        """Move parameters and buffers to a device and/or cast floating ones to a dtype.

        ``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(device=..., dtype=...)``.
        Tensors change in place (their memory is replaced), so references
        held elsewhere (an optimizer) stay valid.  Returns self.
        """
        device, dtype = _parse_to_args(args, kwargs)
        if dtype is not None and not dtypes.is_floating(dtype):
            raise TypeError(
                f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}"
            )

        def convert(t):  # Tensor -> its new data array
            array = t._data if device is None else to_device(t._data, device)
            if dtype is not None and dtypes.is_floating(t.dtype):
                return array.astype(dtype)
            return array

        return self._tensors_in_place(convert)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        """Move parameters and buffers to a GPU (``cuda``, or ``cuda:<device>``); return self."""
        return self.to(cuda_device(device))

    def float(self):
        """Cast floating-point parameters and buffers to float32 (in place); return self."""
        return self.to(dtypes.float32)

    def double(self):
        """Cast floating-point parameters and buffers to float64 (in place); return self."""
        return self.to(dtypes.float64)

    def bfloat16(self):
        """Refused, as :meth:`half`: minidl computes in float32 and float64 only."""
        raise RuntimeError(f"{type(self).__name__}.bfloat16(): minidl computes in float32 and float64 "
                           "only; keep the model in float32 (.float()) or use .double()")

    def half(self):
        """Refused: minidl computes in float32 and float64 only (float16 is a storage dtype)."""
        raise RuntimeError(f"{type(self).__name__}.half(): minidl computes in float32 and float64 only; "
                           "keep the model in float32 (.float()) or use .double()")

    # ------------------------------------------------------------------
    # state dict
    # ------------------------------------------------------------------
    def _local_state(self):
        """This module's own entries of the state dict: parameters, then persistent buffers."""
        state = OrderedDict()
        for name, p in self._parameters.items():
            if p is not None:
                state[name] = p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                state[name] = b
        return state

    def state_dict(self, *, destination=None, prefix="", keep_vars=False):
        """An ``OrderedDict`` from dotted names to this model's state.

        Contains parameters and persistent buffers, in PyTorch's order.  Values
        are detached Tensors that SHARE memory with the model (not copies):
        save them, or copy them, before training further.  With
        ``keep_vars=True`` the Parameters themselves are returned.
        Unlike ``named_parameters``, a tied tensor appears under every name.
        """
        if destination is None:
            destination = OrderedDict()
        for name, value in self._local_state().items():
            destination[prefix + name] = value if keep_vars else value.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(
                    destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars
                )
        return destination

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` into this model's parameters and buffers.

        Values may be Tensors or NumPy arrays; they are cast to the dtype of
        the tensor they are copied into.  Everything is checked first; if
        anything is wrong (with ``strict=True``: a missing or unexpected key;
        always: a shape mismatch or a value that is not an array) ONE
        ``RuntimeError`` lists every problem and the model is left unchanged.
        Returns ``(missing_keys, unexpected_keys)`` as a named tuple.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing, unexpected, errors, copies = [], [], [], []
        _check_state_dict(self, state_dict, "", missing, unexpected, errors, copies)

        if strict:
            if unexpected:
                keys = ", ".join(f'"{k}"' for k in unexpected)
                errors.insert(0, f"Unexpected key(s) in state_dict: {keys}. ")
            if missing:
                keys = ", ".join(f'"{k}"' for k in missing)
                errors.insert(0, f"Missing key(s) in state_dict: {keys}. ")
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {self._get_name()}:\n\t" + "\n\t".join(errors)
            )

        # All checks passed: now (and only now) change the model.
        with no_grad():
            for target, array in copies:
                target.copy_(array)  # in place (a new version); casts to target's dtype
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------
    # repr
    # ------------------------------------------------------------------
    def _get_name(self):
        return type(self).__name__

    def extra_repr(self):
        """One line (or several) describing this module's settings; shown in ``repr``."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            "(" + name + "): " + _addindent(repr(module), 2)
            for name, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        text = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"


def _check_state_dict(module, state_dict, prefix, missing, unexpected, errors, copies):
    """Compare ``state_dict`` with ``module`` (recursively) without changing anything.

    Fills ``missing`` / ``unexpected`` (keys), ``errors`` (messages) and
    ``copies`` (``(target tensor, source array)`` pairs to copy later).
    Visits modules in the same order as PyTorch, so key lists match torch's.
    """
    local = module._local_state()
    for name, target in local.items():
        key = prefix + name
        if key not in state_dict:
            missing.append(key)
            continue
        value = state_dict[key]
        if isinstance(value, Tensor):
            array = value._data
        elif isinstance(value, np.ndarray):
            array = value
        else:
            errors.append(
                f'While copying the parameter named "{key}", expected minidl Tensor or '
                f"numpy.ndarray from checkpoint but received {type(value)}"
            )
            continue
        if tuple(array.shape) != tuple(target.shape):
            errors.append(
                f"size mismatch for {key}: copying a param with shape {tuple(array.shape)} "
                f"from checkpoint, the shape in current model is {tuple(target.shape)}."
            )
            continue
        if array.dtype.kind not in "biuf":
            errors.append(f"dtype mismatch for {key}: expected numbers, got an array of dtype {array.dtype} "
                          f"(the model's is {target.dtype})")
            continue
        if array.dtype.kind == "f" and target.dtype.kind != "f":
            errors.append(f"dtype mismatch for {key}: copying floating-point values ({array.dtype}) into "
                          f"the {target.dtype} tensor of the model would truncate them")
            continue
        copies.append((target, array))

    for key in state_dict:
        if not isinstance(key, str):
            if prefix == "":  # report it once, at the top level
                unexpected.append(key)
            continue
        if not key.startswith(prefix):
            continue
        head, dot, _ = key[len(prefix):].partition(".")
        if dot:
            if head not in module._modules:  # deeper keys belong to a child
                unexpected.append(key)
        elif head not in local:
            unexpected.append(key)

    for name, child in module._modules.items():
        if child is not None:
            _check_state_dict(
                child, state_dict, prefix + name + ".", missing, unexpected, errors, copies
            )


def _parse_to_args(args, kwargs):
    """Split the arguments of ``Module.to`` into ``(device, dtype)`` (``non_blocking`` and
    ``memory_format`` are accepted and ignored, as a CPU or a CuPy array has no use for them)."""
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    if len(args) > 2:
        raise TypeError(f"to() takes at most 2 positional arguments, got {len(args)}")
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif isinstance(arg, (str, Device)):
            if device is not None:
                raise TypeError("to() got two devices")
            device = arg
        else:
            if dtype is not None:
                raise TypeError("to() got two dtypes")
            dtype = arg
    return device, dtypes.as_dtype(dtype)
