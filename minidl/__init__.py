"""minidl: a from-scratch deep-learning engine that teaches every gradient.

The public names mirror PyTorch's: ``minidl.tensor``, ``minidl.nn``,
``minidl.optim``, ``minidl.functional`` (as ``F``), ``minidl.no_grad``, ...
"""
import os as _os
import sys as _sys

# NumPy's idle OpenBLAS threads spin after each matrix product (2**28 cycles by default), holding
# a core that the Numba kernel after it needs (it then runs up to 2.5x slower); 2**12 cycles
# (microseconds) lets them sleep before that kernel starts, and waking them for the next product
# cost the models' steps less (docs/performance.md, "Threads"; benchmarks/thread_timeout.py
# measures it). A value set wins. OpenBLAS reads it when NumPy loads it: if NumPy came first, the
# loaded OpenBLAS is told to read it again (minidl/backend/openblas_threads.py).
_timeout_is_ours = "OPENBLAS_THREAD_TIMEOUT" not in _os.environ
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "12")
if _timeout_is_ours and "numpy" in _sys.modules:
    from .backend.openblas_threads import apply_thread_timeout as _apply_thread_timeout
    _apply_thread_timeout()

from . import autograd, cuda, functional, random
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import device
from .creation import (arange, empty, eye, full, get_default_device, ones, ones_like, rand, randint,
                       randn, set_default_device, tensor, zeros, zeros_like)
from .dtypes import bool, float32, float64, int64  # noqa: A004  (mirrors torch.bool)
from .dtypes import float32 as float, float64 as double, int64 as long  # noqa: A004  (torch's other names)
from .dtypes import result_type
from .functional.shape import cat, chunk, split, stack
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import Tensor

from . import nn, optim  # noqa: E402  (they use the names above)
from .gradcheck import GradcheckError, gradcheck  # noqa: E402
from .serialization import load, save  # noqa: E402

# PyTorch's top-level functions, dtype names and modes (minidl/torch_functions.py, creation.py, amp.py)
from . import amp  # noqa: E402
from .amp import autocast  # noqa: E402
from .autograd import inference_mode, is_inference_mode_enabled  # noqa: E402
from .creation import (as_tensor, empty_like, from_numpy, full_like, linspace, rand_like,  # noqa: E402
                       randn_like)
from .dtypes import float16, int8, int16, int32, uint8  # noqa: E402
from .dtypes import float16 as half, int16 as short, int32 as int  # noqa: E402,A004  (torch's names)
from .dtypes import get_default_dtype, set_default_dtype  # noqa: E402
from .torch_functions import (abs, allclose, argmax, argmin, clamp, clip, equal, exp, flatten,  # noqa: E402,A004
                              is_tensor, isfinite, isinf, isnan, log, logical_and, logical_not, logical_or,
                              logical_xor, matmul, max, maximum, mean, min, minimum, numel, relu, sigmoid,
                              softmax, sqrt, sum, tanh, where)

# Generators and data loading (minidl/random.py, minidl/utils/data/)
from .creation import randperm  # noqa: E402
from .random import Generator, default_generator, initial_seed, seed  # noqa: E402
from . import utils  # noqa: E402

__version__ = "0.1.0"

# PyTorch's device and layout names (accelerator.py, memory_format.py, cuda/)
from . import accelerator  # noqa: E402
from .cuda import OutOfMemoryError  # noqa: E402
from .memory_format import channels_last, contiguous_format, memory_format, preserve_format  # noqa: E402

# Coursework (minidl/exercises/, docs/course/): MINIDL_STUDENT=DIR runs minidl on the student's
# ops written in DIR (`minidl ex start NAME --dir DIR`), in place of the library's.
import os as _os  # noqa: E402
if _os.environ.get("MINIDL_STUDENT"):
    from .exercises import use_student as _use_student
    _use_student(_os.environ["MINIDL_STUDENT"]).__enter__()
del _os
