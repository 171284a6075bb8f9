"""Peak memory of one call, measured the same way for any library: RSS growth (Linux).

PyTorch's CPU tensors are not seen by tracemalloc and torch offers no peak counter for CPU
memory (``torch.cuda.max_memory_allocated`` is CUDA only), so the comparable measure is
what the operating system sees. In a FRESH process that runs only one library:

    growth = peak RSS during the call  -  RSS just before the call

The peak is the kernel's exact high-water mark of the resident set (``VmHWM`` in
/proc/self/status, no sampling), reset just before the call by writing "5" to
/proc/self/clear_refs (Linux >= 4.0). ``valid`` is False if the reset was refused; the
high-water mark then covers the whole process life and the growth is only an upper bound.
(``ru_maxrss`` is no use here: a child process inherits its parent's high-water mark.)

glibc keeps freed memory for reuse and adapts its mmap threshold as a program runs, which
would hide part of a peak; :data:`CHILD_ENV` fixes the threshold so that every large
array is its own mmap, returned to the system when freed. Both libraries run under it.
"""
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _status_kib(field):
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"_memory: /proc/self/status has no {field} (not Linux?)")


def reset_peak_rss():
    """Set the RSS high-water mark to the current RSS; False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_growth(fn):
    """Run ``fn()`` once: {"rss_before", "peak_growth" (bytes), "valid"} (module docstring)."""
    valid = reset_peak_rss()
    rss_before = _status_kib("VmRSS") * 1024
    fn()
    return {"rss_before": rss_before, "peak_growth": _status_kib("VmHWM") * 1024 - rss_before,
            "valid": valid}
