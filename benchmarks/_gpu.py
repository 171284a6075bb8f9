"""What the GPU benchmarks and the GPU suite share: the device to run on, timing, memory, transfers.

Everything here works for two devices, so that the code path that runs on a GPU is the one
tested on the CPU:

    cuda    CuPy arrays on the GPU: CUDA events time the work (``cupy.cuda.Event``,
            ``cupy.cuda.get_elapsed_time``), a ``cupy.cuda.MemoryHook`` follows the memory
            pool's ``used_bytes()`` for the peak, and CuPy's synchronisation detector
            (``cupy._core.syncdetect._declare_synchronize``, which ``ndarray.get()`` and so
            ``item()``, ``tolist()``, ``float()``, ``int()``, ``bool()`` and
            ``Device.synchronize()`` call) counts device-to-host copies
    strict  the strict test device (minidl/backend/strict.py): NumPy inside, CuPy's refusals
            outside; wall-clock timing, no memory figure, and its explicit conversions
            (``get``, ``item``, ``tolist``, ``float``, ``int``, ``bool``, ``index``) counted

PyTorch, the reference, runs on ``cuda`` for the first and on the CPU for the second
(:func:`torch_device_name`). CuPy is imported only through minidl (``devices.cupy_module``).
"""
import contextlib
import os
import platform
import subprocess
import sys
import time
import traceback

import numpy as np

import minidl
from minidl.backend import devices, strict

GPU_DEVICES = ("cuda", "strict")


class Target:
    """A device the GPU code runs on: ``Target("cuda")`` or ``Target("strict")``."""

    def __init__(self, name):
        if name not in GPU_DEVICES:
            raise ValueError(f"Target: expected one of {GPU_DEVICES}, got {name!r}")
        self.name = name
        self.is_gpu = name == "cuda"
        self.cupy = devices.cupy_module("Target") if self.is_gpu else None
        self.xp = self.cupy if self.is_gpu else strict

    def asarray(self, host):
        """A NumPy array copied to this device."""
        return devices.to_device(np.asarray(host), self.name)

    @staticmethod
    def host(array):
        """A NumPy copy of a device array (an explicit transfer)."""
        return devices.to_host(array)

    def synchronize(self):
        if self.is_gpu:
            self.cupy.cuda.get_current_stream().synchronize()

    def free_memory(self):
        """Return the blocks cached by CuPy's pool (and PyTorch's, if it was imported) to the GPU."""
        if self.is_gpu:
            self.synchronize()
            self.cupy.get_default_memory_pool().free_all_blocks()
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()

    def clock(self):
        """A :class:`Clock` that times this device's work."""
        return Clock("cupy" if self.is_gpu else "host", self.cupy)

    def kernels(self):
        """The kernel module this device's arrays use (cupy_gpu or reference)."""
        return minidl.backend.kernels_for(self.asarray(np.zeros(1, np.float32)))


def torch_device_name(target):
    """Where PyTorch runs next to ``target``: its GPU for cuda, the CPU for strict."""
    return "cuda" if target.is_gpu else "cpu"


class Clock:
    """Marks on a timeline: ``clock.mark()`` between pieces of work, ``clock.intervals_ms()``
    the milliseconds between consecutive marks.

    kind ``cupy`` and ``torch``: CUDA events recorded on the current stream (the GPU's time,
    read after one synchronisation at the end); ``host``: ``time.perf_counter``."""

    def __init__(self, kind, module=None):
        if kind not in ("cupy", "torch", "host"):
            raise ValueError(f"Clock: unknown kind {kind!r}")
        self.kind, self.module, self.marks = kind, module, []

    def mark(self):
        if self.kind == "cupy":
            event = self.module.cuda.Event()
            event.record()
        elif self.kind == "torch":
            event = self.module.cuda.Event(enable_timing=True)
            event.record()
        else:
            event = time.perf_counter()
        self.marks.append(event)

    def intervals_ms(self):
        if len(self.marks) < 2:
            return []
        last = self.marks[-1]
        if self.kind == "cupy":
            last.synchronize()
            get = self.module.cuda.get_elapsed_time
            return [get(a, b) for a, b in zip(self.marks, self.marks[1:])]
        if self.kind == "torch":
            last.synchronize()
            return [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        return [1e3 * (b - a) for a, b in zip(self.marks, self.marks[1:])]


def torch_clock(torch, torch_device):
    return Clock("torch", torch) if torch_device == "cuda" else Clock("host")


# ---------------------------------------------------------------------------- peak memory

def minidl_peak_memory(target, fn):
    """Run ``fn()``; ``{"peak_bytes", "live_before_bytes"}`` of CuPy's memory pool (bytes in
    use by arrays, not what the pool caches), or None on the strict device."""
    if not target.is_gpu:
        fn()
        return None
    cupy = target.cupy
    pool = cupy.get_default_memory_pool()
    target.synchronize()
    live = pool.used_bytes()

    class PeakHook(cupy.cuda.MemoryHook):
        name = "minidl_gpu_suite_peak"

        def __init__(self):
            self.peak = live

        def malloc_postprocess(self, **kwargs):
            self.peak = max(self.peak, pool.used_bytes())

    with PeakHook() as hook:
        fn()
        target.synchronize()
    return {"peak_bytes": int(hook.peak), "live_before_bytes": int(live)}


def torch_peak_memory(torch, torch_device, fn):
    """Run ``fn()``; PyTorch's ``max_memory_allocated`` over it on cuda, None on the CPU."""
    if torch_device != "cuda":
        fn()
        return None
    torch.cuda.synchronize()
    live = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return {"peak_bytes": int(torch.cuda.max_memory_allocated()), "live_before_bytes": int(live)}


# ---------------------------------------------------------------------------- host transfers

_STRICT_CONVERSIONS = ("get", "item", "tolist", "__float__", "__int__", "__bool__", "__index__")


def _where(skip=2, frames=8):
    """The calling frames, innermost last, as 'file:line in function' (this module left out)."""
    stack = traceback.extract_stack()[:-skip]
    here = os.path.abspath(__file__)
    stack = [f for f in stack if os.path.abspath(f.filename) != here]
    return [f"{_short(f.filename)}:{f.lineno} in {f.name}" for f in stack[-frames:]]


def _short(filename):
    parts = filename.replace("\\", "/").split("/")
    for anchor in ("minidl", "benchmarks", "unet", "tests"):
        if anchor in parts:
            return "/".join(parts[len(parts) - 1 - parts[::-1].index(anchor):])
    return filename


class HostTransfers:
    """Context manager: records every device-to-host copy made while it is active.

    ``events`` is a list of {"what", "where"} (where: the Python frames that asked for it).
    On cuda it also counts ``Device.synchronize()`` (CuPy declares both the same way); a
    transfer that CuPy makes without ``ndarray.get`` (none of minidl's code does) is not seen.
    ``available`` is False when this CuPy has no synchronisation detector to hook."""

    def __init__(self, target):
        self.target, self.events, self._undo = target, [], []
        self.available = True
        if target.is_gpu:
            try:
                from cupy._core import syncdetect  # CuPy's private hook point
            except ImportError:
                self.available = False
            else:
                self.available = callable(getattr(syncdetect, "_declare_synchronize", None))

    def _record(self, what):
        self.events.append({"what": what, "where": _where(skip=3)})

    def __enter__(self):
        if not self.target.is_gpu:
            for name in _STRICT_CONVERSIONS:
                original = strict.StrictArray.__dict__[name]
                setattr(strict.StrictArray, name, self._counting(original, f"StrictArray.{name}"))
                self._undo.append((strict.StrictArray, name, original))
        elif self.available:
            from cupy._core import syncdetect

            original = syncdetect._declare_synchronize

            def declare(_original=original):
                self._record("cupy device-to-host copy or synchronize (ndarray.get / "
                             "Device.synchronize)")
                return _original()

            syncdetect._declare_synchronize = declare
            self._undo.append((syncdetect, "_declare_synchronize", original))
        return self

    def _counting(self, original, what):
        def counted(*args, **kwargs):
            self._record(what)
            return original(*args, **kwargs)

        counted.__name__ = getattr(original, "__name__", what)
        return counted

    def __exit__(self, *exc_info):
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()
        return False


# ---------------------------------------------------------------------------- machine and versions

def _version(name):
    try:
        module = __import__(name)
    except Exception as error:  # noqa: BLE001  (any import failure: record it)
        return f"not importable ({type(error).__name__}: {error})"
    return getattr(module, "__version__", "unknown")


def _decode(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def environment(target, torch=None):
    """The machine, the GPU, the driver and every library version, for the report."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "numba": _version("numba"),
        "hypothesis": _version("hypothesis"),
        "pytest": _version("pytest"),
        "minidl_cpu_backend": minidl.backend.get_backend(),
        "device": target.name,
        "cuda_problem": devices.cuda_problem() or None,
        "git_commit": _git_commit(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if target.is_gpu:
        cupy = target.cupy
        runtime = cupy.cuda.runtime
        props = runtime.getDeviceProperties(cupy.cuda.Device().id)
        info.update({
            "gpu_name": _decode(props.get("name")),
            "compute_capability": f"{props.get('major')}.{props.get('minor')}",
            "gpu_memory_bytes": int(props.get("totalGlobalMem", 0)),
            "multiprocessors": props.get("multiProcessorCount"),
            "cupy": cupy.__version__,
            "cuda_driver_api_version": runtime.driverGetVersion(),
            "cuda_runtime_version": runtime.runtimeGetVersion(),
            "nvidia_driver": _nvidia_smi_driver(),
            "cupy_tf32": os.environ.get("CUPY_TF32", "0"),
        })
        try:
            info["nvrtc_version"] = ".".join(map(str, cupy.cuda.nvrtc.getVersion()))
        except Exception as error:  # noqa: BLE001
            info["nvrtc_version"] = f"unknown ({error})"
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_cuda"] = getattr(torch.version, "cuda", None)
        if torch.cuda.is_available():
            info["torch_cudnn"] = torch.backends.cudnn.version()
            info["torch_gpu_name"] = torch.cuda.get_device_name(0)
    else:
        info["torch"] = None
    return info


def _nvidia_smi_driver():
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({type(error).__name__})"
    return done.stdout.strip() or f"unknown (nvidia-smi exit {done.returncode})"


def _git_commit():
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


@contextlib.contextmanager
def default_device(name):
    """Tensors made without ``device=`` go to ``name`` inside the block."""
    minidl.set_default_device(name)
    try:
        yield
    finally:
        minidl.set_default_device(None)


def import_torch():
    """PyTorch, or None where it does not import (the report says so)."""
    try:
        import torch
    except ImportError:
        return None
    return torch
