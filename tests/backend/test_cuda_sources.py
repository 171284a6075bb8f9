"""The CUDA sources of the GPU backend compile, and define exactly the kernels cupy_gpu.py uses.

No GPU needed:
  - `nvcc -ptx -arch=sm_90` (H100/H200) compiles every minidl/backend/cuda/*.cu with no warning,
    and the PTX's entry points are exactly the names in cupy_gpu.KERNEL_NAMES for every dtype
    (skipped only where nvcc is not on PATH);
  - the sources include no header, so NVRTC (what cupy.RawModule compiles with) needs none;
  - cupy_gpu.py's public kernels have the reference's signatures, and `import minidl` does not
    import CuPy.
cupy_gpu.py imports CuPy, so these tests read it as text (ast) instead of importing it.
tests/backend/test_cupy_kernels.py runs the kernels (on a GPU, and built for the CPU).
"""
import ast
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minidl.backend import reference

BACKEND_DIR = Path(reference.__file__).parent
GPU_MODULE = BACKEND_DIR / "cupy_gpu.py"
SOURCES = sorted((BACKEND_DIR / "cuda").glob("*.cu"))
REPO_ROOT = BACKEND_DIR.parents[1]


def _gpu_module_tree():
    return ast.parse(GPU_MODULE.read_text(), filename=str(GPU_MODULE))


def _gpu_module_constant(name):
    """The value of a module-level literal ``name = ...`` of cupy_gpu.py."""
    for node in _gpu_module_tree().body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == name for target in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"cupy_gpu.py defines no literal {name}")


def expected_kernels(filename):
    """The extern "C" kernel names that cupy_gpu.py asks of one source file."""
    suffixes = _gpu_module_constant("DTYPE_SUFFIXES").values()
    names = set()
    for name in _gpu_module_constant("KERNEL_NAMES")[filename]:
        names |= {name.format(suffix) for suffix in suffixes} if "{}" in name else {name}
    return names


def test_every_source_file_is_used_and_exists():
    assert SOURCES, "no minidl/backend/cuda/*.cu"
    assert set(_gpu_module_constant("KERNEL_NAMES")) == {source.name for source in SOURCES}


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.name)
def test_source_compiles_to_ptx_defining_the_kernels_the_python_side_uses(source, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
    ptx = tmp_path / f"{source.stem}.ptx"
    result = subprocess.run(
        [nvcc, "-ptx", "-arch=sm_90", "-std=c++14", "-Werror", "all-warnings", "-o", str(ptx),
         str(source)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"nvcc failed on {source.name}:\n{result.stderr}"
    entries = set(re.findall(r"\.entry\s+([A-Za-z_]\w*)", ptx.read_text()))
    assert entries == expected_kernels(source.name)


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.name)
def test_sources_include_no_header(source):
    """NVRTC compiles without the system headers nvcc would find: keep every file self-contained."""
    assert not re.search(r"^\s*#\s*include", source.read_text(), flags=re.MULTILINE)


def test_gpu_kernels_have_the_reference_signatures():
    defined = {node.name: node for node in _gpu_module_tree().body
               if isinstance(node, ast.FunctionDef)}
    for name, function in inspect.getmembers(reference, inspect.isfunction):
        if name.startswith("_") or function.__module__ != reference.__name__:
            continue
        if name in reference.OPTIONAL_KERNELS and name not in defined:
            continue  # the ops take another path without it
        assert name in defined, f"cupy_gpu.py lacks the kernel {name}"
        gpu_parameters = f"({ast.unparse(defined[name].args)})"
        assert gpu_parameters == str(inspect.signature(function)), name


def test_importing_minidl_does_not_import_cupy():
    code = ("import sys, minidl, minidl.functional, minidl.nn, minidl.backend; "
            "assert 'cupy' not in sys.modules, 'cupy imported'; "
            "assert 'minidl.backend.cupy_gpu' not in sys.modules, 'cupy_gpu imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.name)
def test_source_compiles_with_nvrtc_as_cupy_would(source):
    """What cupy.RawModule does on first use, minus the GPU: NVRTC with CuPy's options.

    Skipped where CuPy or its NVRTC library is missing; on a GPU machine test_cupy_kernels.py
    compiles through RawModule itself.
    """
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc")
    try:
        nvrtc.getVersion()
    except Exception as error:  # the NVRTC shared library is not installed
        pytest.skip(f"NVRTC is not available: {error}")
    program = nvrtc.createProgram(source.read_text(), source.name, (), ())
    try:
        try:
            nvrtc.compileProgram(program, ["-std=c++14", "-arch=compute_90",
                                           "--device-as-default-execution-space"])
        except nvrtc.NVRTCError as error:
            pytest.fail(f"NVRTC failed on {source.name}: {error}\n{nvrtc.getProgramLog(program)}")
        ptx = nvrtc.getPTX(program)
    finally:
        nvrtc.destroyProgram(program)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert set(re.findall(r"\.entry\s+([A-Za-z_]\w*)", ptx)) == expected_kernels(source.name)
