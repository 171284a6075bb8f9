"""``minidl.cuda.amp``: PyTorch's older names for mixed precision (deprecated there in favour of
``torch.amp``), kept so that scripts using them run. Both are the no-ops of minidl/amp.py."""
import warnings

from .. import amp as _amp


class GradScaler(_amp.GradScaler):
    """``minidl.amp.GradScaler("cuda", ...)``; warns that the name is deprecated, as PyTorch does."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        warnings.warn("`minidl.cuda.amp.GradScaler(args...)` is deprecated. Please use "
                      "`minidl.amp.GradScaler('cuda', args...)` instead.", FutureWarning, stacklevel=2)
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)


class autocast(_amp.autocast):
    """``minidl.autocast("cuda", ...)``; warns that the name is deprecated, as PyTorch does."""

    def __init__(self, enabled=True, dtype=None, cache_enabled=True):
        warnings.warn("`minidl.cuda.amp.autocast(args...)` is deprecated. Please use "
                      "`minidl.amp.autocast('cuda', args...)` instead.", FutureWarning, stacklevel=2)
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)
