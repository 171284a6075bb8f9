"""Mixed precision, as names only: ``minidl.autocast`` (= ``minidl.amp.autocast``) and
``minidl.amp.GradScaler``.

minidl computes every op in the dtype of its inputs (float32 by default; no bfloat16, and
float16 only as storage), so there is nothing for autocast to switch: ``autocast`` is a
context manager and decorator that changes nothing, and says so once per process (a
``UserWarning``) the first time it is entered enabled. A PyTorch training script that uses
``with torch.autocast("cuda"):`` and a ``GradScaler`` therefore runs unchanged, in float32.
(PyTorch 2.13 also has ``torch.cpu.amp.autocast`` and ``torch.cuda.amp.autocast``,
deprecated in favour of ``torch.autocast``; minidl has only the latter.)
"""
import functools
import warnings

_warned = False


class autocast:
    """``autocast(device_type, dtype=None, enabled=True, cache_enabled=None)``: a no-op here."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"autocast: Expected `device_type` of type `str`, got: `{type(device_type)}`")
        self.device_type, self.fast_dtype = device_type, dtype
        self._enabled, self._cache_enabled = bool(enabled), cache_enabled

    def __enter__(self):
        global _warned
        if self._enabled and not _warned:
            _warned = True
            warnings.warn(f"minidl.autocast({self.device_type!r}) does nothing: minidl computes every op in "
                          "the dtype of its inputs (float32 by default) and has no mixed precision. "
                          "This warning is shown once.", UserWarning, stacklevel=2)
        return self

    def __exit__(self, *exc_info):
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.fast_dtype, self._enabled, self._cache_enabled):
                return func(*args, **kwargs)

        return wrapper


class GradScaler:
    """PyTorch's loss scaler for float16 training, as a pass-through (it behaves as PyTorch's
    with ``enabled=False``): float32 gradients need no scaling. ``scale(loss)`` returns ``loss``,
    ``step(optimizer)`` calls ``optimizer.step()``, ``unscale_`` and ``update`` do nothing,
    ``get_scale()`` is 1.0."""

    def __init__(self, device="cuda", init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        self.device = device

    def scale(self, outputs):
        return outputs

    def unscale_(self, optimizer):
        return None

    def step(self, optimizer, *args, **kwargs):
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        return None

    def get_scale(self):
        return 1.0

    def is_enabled(self):
        return False

    def state_dict(self):
        return {}

    def load_state_dict(self, state_dict):
        return None
