r"""Vectors of WIDTH float32 for Numba kernels: a few registers as one value.

Numba compiles a loop over an array into vector instructions by itself, but on this project's
CPUs LLVM picks 256-bit vectors, and a sum that runs across an outer loop (a convolution's
output, summed over input channels and taps) goes back to memory at every step. A kernel that
holds a block of outputs in registers across those loops needs values that ARE vectors; this
module gives Numba one such type and six operations:

    zeros()          -> v        v[k] = 0
    load(a, i)       -> v        v[k] = a[i + k]          (a: 1-D C-contiguous float32)
    store(a, i, v)               a[i + k] = v[k]
    splat(s)         -> v        v[k] = s
    fma(x, y, z)     -> v        v[k] = x[k] * y[k] + z[k], rounded once
    add(x, y)        -> v        v[k] = x[k] + y[k]
for k = 0 .. WIDTH - 1. ``load`` and ``store`` do not check bounds: the kernel owns that.

WIDTH follows the CPU: 64 (four 512-bit registers) with AVX-512, else 16 (two 256-bit AVX2
registers; a value of 64 there took eight of AVX2's sixteen and the kernels spilled). Each
operation also tells LLVM that the function it is compiled into may use vectors of the CPU's
width (the function attributes ``min-legal-vector-width`` and ``prefer-vector-width``): without
them LLVM splits 512-bit values into 256-bit halves on AVX-512 CPUs. The kernels use this module
where ``AVX512`` or ``AVX2`` is true (docs/performance.md, "Vectors of 64 float32" and
"2026-12-06, AMD EPYC").
"""
import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

_FEATURES = llvm.get_host_cpu_features().flatten().split(",")
AVX512 = "+avx512f" in _FEATURES
AVX2 = "+avx2" in _FEATURES and "+fma" in _FEATURES
WIDTH = 64 if AVX512 else 16

_VECTOR = ir.VectorType(ir.FloatType(), WIDTH)
_BITS = 512 if AVX512 else 256  # the widest registers of the CPU
_WIDE_VECTORS = (f'"min-legal-vector-width"="{_BITS}"', f'"prefer-vector-width"="{_BITS}"')


class Float32Vector(types.Type):
    """Numba's type of a value of WIDTH float32 (an LLVM <WIDTH x float>)."""

    def __init__(self):
        super().__init__(name=f"float32x{WIDTH}")


float32xW = Float32Vector()


@register_model(Float32Vector)
class _Float32VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _allow_wide_vectors(builder):
    """Mark the function being compiled as one that may use the CPU's widest registers (string
    attributes, which llvmlite's checked ``add`` does not know: added to the set directly)."""
    attributes = builder.function.attributes
    for attribute in _WIDE_VECTORS:
        if attribute not in attributes:
            set.add(attributes, attribute)


def _is_float32_row(a):
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.float32


def _address(context, builder, array_type, array, index):
    """A <WIDTH x float>* to array[index] (a C-contiguous 1-D float32 array)."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), _VECTOR.as_pointer())


@intrinsic
def zeros(typingctx):
    def codegen(context, builder, signature, args):
        return ir.Constant(_VECTOR, [0.0] * WIDTH)
    return float32xW(), codegen


@intrinsic
def load(typingctx, a, i):
    if not (_is_float32_row(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        _allow_wide_vectors(builder)
        return builder.load(_address(context, builder, signature.args[0], *args), align=4)
    return float32xW(a, i), codegen


@intrinsic
def store(typingctx, a, i, v):
    if not (_is_float32_row(a) and isinstance(i, types.Integer) and v == float32xW):
        return None

    def codegen(context, builder, signature, args):
        _allow_wide_vectors(builder)
        builder.store(args[2], _address(context, builder, signature.args[0], args[0], args[1]), align=4)
        return context.get_dummy_value()
    return types.void(a, i, v), codegen


@intrinsic
def splat(typingctx, s):
    if not isinstance(s, types.Float):
        return None

    def codegen(context, builder, signature, args):
        _allow_wide_vectors(builder)
        value = context.cast(builder, args[0], signature.args[0], types.float32)
        one = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, ir.Constant(_VECTOR, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), WIDTH), [0] * WIDTH))
    return float32xW(s), codegen


@intrinsic
def fma(typingctx, x, y, z):
    if not (x == y == z == float32xW):
        return None

    def codegen(context, builder, signature, args):
        _allow_wide_vectors(builder)
        llvm_fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3),
                                                  f"llvm.fma.v{WIDTH}f32")
        return builder.call(llvm_fma, list(args))
    return float32xW(x, y, z), codegen


@intrinsic
def add(typingctx, x, y):
    if not (x == y == float32xW):
        return None

    def codegen(context, builder, signature, args):
        _allow_wide_vectors(builder)
        return builder.fadd(*args)
    return float32xW(x, y), codegen
