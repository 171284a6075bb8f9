"""OPENBLAS_THREAD_TIMEOUT takes effect whatever the import order (minidl/backend/openblas_threads.py).

Each case runs in a fresh Python, since OpenBLAS reads its environment once per process; the
timeout OpenBLAS holds is asked of OpenBLAS itself (its ``openblas_thread_timeout``: the exponent
it read, 0 when it read none)."""
import os
import subprocess
import sys
import textwrap

import pytest

from minidl.backend import openblas_threads
from minidl.backend.openblas_threads import loaded_openblas_paths

# prints the exponent every loaded OpenBLAS holds, and checks that products still add up
PROBE = textwrap.dedent("""
    {imports}
    import ctypes, importlib.util, numpy as np
    # the module alone, not the package: the control must not import minidl
    spec = importlib.util.spec_from_file_location("openblas_threads", {module!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a = np.random.default_rng(0).standard_normal((300, 300))
    assert np.allclose(a @ a, np.einsum("ik,kj->ij", a, a))  # the restarted threads compute
    print([ctypes.CDLL(p).openblas_thread_timeout() for p in module.loaded_openblas_paths()])
""")

def _has_restartable_openblas():
    import ctypes
    paths = loaded_openblas_paths()
    return bool(paths) and all(hasattr(ctypes.CDLL(p), "openblas_thread_timeout") for p in paths)


needs_openblas = pytest.mark.skipif(not _has_restartable_openblas(),
                                    reason="NumPy's BLAS here is not an OpenBLAS with a thread server")


def _probe(imports, timeout=None):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = timeout
    code = PROBE.format(imports=imports, module=openblas_threads.__file__)
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])


@needs_openblas
@pytest.mark.parametrize("imports", ["import minidl", "import numpy; import minidl"])
def test_minidl_timeout_holds_whether_numpy_or_minidl_comes_first(imports):
    assert _probe(imports) == [12]


@needs_openblas
def test_a_timeout_the_user_set_is_left_alone():
    assert _probe("import numpy; import minidl", timeout="20") == [20]


@needs_openblas
def test_without_minidl_openblas_keeps_its_default():
    """The control: OpenBLAS read no timeout (0 = its default of 2**28 ticks)."""
    assert _probe("import numpy") == [0]


def test_loaded_openblas_paths_reads_the_libraries_named_openblas(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r--p 00000000 08:01 1 /usr/lib/libopenblasp-r0.3.21.so\n"
        "7f01-7f02 r-xp 00001000 08:01 1 /usr/lib/libopenblasp-r0.3.21.so\n"
        "7f02-7f03 r--p 00000000 08:01 2 /site/numpy.libs/libscipy_openblas64_-32a4b2a6.so\n"
        "7f03-7f04 r--p 00000000 08:01 3 /home/openblas_fan/lib/libm.so.6\n"
        "7f04-7f05 rw-p 00000000 00:00 0 \n"
        "7f05-7f06 rw-p 00000000 00:00 0 [heap]\n")
    assert loaded_openblas_paths(str(maps)) == ["/site/numpy.libs/libscipy_openblas64_-32a4b2a6.so",
                                                "/usr/lib/libopenblasp-r0.3.21.so"]
    assert loaded_openblas_paths(str(tmp_path / "missing")) == []
