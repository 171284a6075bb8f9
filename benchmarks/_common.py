"""What every benchmark shares: thread set-up before NumPy loads, machine info, timing.

Import this module FIRST in a benchmark script (before numpy, minidl or torch):
BLAS reads its thread count when it is loaded, so ``--threads`` is taken from
``sys.argv`` here and exported to OPENBLAS/OMP/MKL/NUMBA_NUM_THREADS.
"""
import os
import sys


def _threads_from_argv(argv, default=2):
    """--threads N / --threads=N, read before numpy is imported (argparse runs later)."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return str(default)


THREADS = _threads_from_argv(sys.argv[1:])
NUMPY_WAS_IMPORTED = "numpy" in sys.modules
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = THREADS
import minidl  # noqa: E402,F401  (before NumPy, as `unet` does: it sets OPENBLAS_THREAD_TIMEOUT up)

import datetime  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def warn_if_threads_not_applied(requested):
    if str(requested) != THREADS:
        print(f"warning: BLAS threads were fixed at import ({THREADS}); "
              f"--threads {requested} applies to torch only", file=sys.stderr)
    if NUMPY_WAS_IMPORTED:
        print("warning: numpy was imported before the benchmark; BLAS may ignore --threads",
              file=sys.stderr)


def machine_info(torch, threads):
    """CPU model, thread count and library versions, for the results files."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "unknown"
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except (TypeError, KeyError):
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas,
        "torch": torch.__version__,
        "minidl": getattr(minidl, "__version__", "dev"),
        "minidl_backend": minidl.backend.get_backend(),
        "numba_threading_layer": _numba_threading_layer(),  # TBB, else workqueue (numba_cpu.start_threads)
        # OpenBLAS picks its kernels for the CPU it finds unless this variable forces a type;
        # a forced older type (Haswell: AVX2 on an AVX-512 CPU) halves NumPy's matrix-product peak
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "openblas_kernel": _openblas_kernel(),
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),  # minidl sets 12
        "platform": platform.platform(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def _numba_threading_layer():
    """The threading layer of Numba's pool (starting it as minidl does), or None without Numba."""
    if minidl.backend.get_backend() != "numba":
        return None
    import numba

    minidl.backend.kernel_module("numba")  # start_threads: the layer minidl picks
    return numba.threading_layer()


def _openblas_kernel():
    """The kernel family OpenBLAS runs for NumPy (threadpoolctl's "architecture", e.g. SkylakeX
    or Haswell), or None when threadpoolctl is not installed or NumPy uses another BLAS."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    found = [info.get("architecture") for info in threadpool_info()
             if info.get("internal_api") == "openblas" and "numpy" in info.get("filepath", "")]
    return found[0] if found else None


def machine_line(m, extra=""):
    """The 'Machine: ...' sentence under every results table (``m`` from :func:`machine_info`)."""
    coretype = m.get("openblas_coretype")
    blas = m["numpy_blas"] + (f", OPENBLAS_CORETYPE={coretype}" if coretype else "")
    if m.get("openblas_kernel"):
        blas += f", {m['openblas_kernel']} kernels"
    if m.get("openblas_thread_timeout"):
        blas += f", OPENBLAS_THREAD_TIMEOUT={m['openblas_thread_timeout']}"
    return (f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), {m['threads']} threads; "
            f"Python {m['python']}, numpy {m['numpy']} ({blas}), torch {m['torch']}{extra}, "
            f"minidl backend {m['minidl_backend']}"
            + (f" ({m['numba_threading_layer']} threads)" if m.get("numba_threading_layer") else "")
            + f"; {m['date']}.")


def median_ms(seconds):
    return 1e3 * statistics.median(seconds)


def timed(fn):
    """Seconds taken by one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_step(compute_loss, optimizer, clock=None, phases=("forward", "backward", "update")):
    """One training step: ``compute_loss()``, backward, ``optimizer.step()`` and ``zero_grad()``.

    Either library's objects work (same API). With a ``clock`` dict, appends the seconds of
    the three parts under the three names of ``phases``. Returns the loss tensor.
    """
    t0 = time.perf_counter()
    loss = compute_loss()
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad()
    t3 = time.perf_counter()
    if clock is not None:
        for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
            clock[name].append(seconds)
    return loss


def rel_error(a, b):
    """max |a - b| / max |b|: a relative error that ignores single tiny entries."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)) if b.size else 0.0


def matmul_peak_gflops(n=2048, repeats=5):
    """The machine's measured float32 matrix-product rate through NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    a @ b  # warm-up
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9
