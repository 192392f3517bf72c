"""Explicit 16-lane float32 vectors for numba kernels.

Our kernels compile without fastmath (see :mod:`model.kernels`), so LLVM keeps every floating-
point sum in source order and will not vectorise a reduction by itself. These intrinsics emit
LLVM vector operations directly: the kernel author chooses which values share a vector and so
fixes the summation order, and the code still runs 16 lanes at a time. Each lane does exactly the
scalar IEEE operations written (no fused multiply-add), so results are the same on every x86-64
host whatever vector width LLVM lowers ``<16 x float>`` to.

``vload(a, i)``/``vstore(a, i, v)`` read/write ``a.flat[i:i+16]`` of a C-contiguous float32 array
(the caller keeps ``i + 16 <= a.size``); ``vzero()``, ``vsplat(x)``, ``vadd``, ``vmul`` are what they
say.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, register_model

LANES = 16
_VECTOR = ir.VectorType(ir.FloatType(), LANES)


class F32x16(types.Type):
    """numba type of a ``<16 x float>`` value (lives in registers; never in an array)."""

    def __init__(self):
        super().__init__(name="F32x16")


f32x16 = F32x16()


@register_model(F32x16)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _check_float32_array(array) -> None:
    if not (isinstance(array, types.Array) and array.dtype == types.float32 and array.layout == "C"):
        raise TypeError(f"simd needs a C-contiguous float32 array, got {array}")


def _address(context, builder, array_type, array, offset):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [offset]), _VECTOR.as_pointer())


@intrinsic
def vload(typingctx, array, offset):
    _check_float32_array(array)

    def codegen(context, builder, signature, args):
        return builder.load(_address(context, builder, signature.args[0], args[0], args[1]), align=4)

    return f32x16(array, types.intp), codegen


@intrinsic
def vstore(typingctx, array, offset, vector):
    _check_float32_array(array)

    def codegen(context, builder, signature, args):
        builder.store(args[2], _address(context, builder, signature.args[0], args[0], args[1]), align=4)
        return context.get_dummy_value()

    return types.void(array, types.intp, f32x16), codegen


@intrinsic
def vzero(typingctx):
    def codegen(context, builder, signature, args):
        return ir.Constant(_VECTOR, [0.0] * LANES)

    return f32x16(), codegen


@intrinsic
def vsplat(typingctx, value):
    def codegen(context, builder, signature, args):
        one = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), args[0], ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))

    return f32x16(types.float32), codegen


@intrinsic
def vadd(typingctx, a, b):
    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], args[1])

    return f32x16(f32x16, f32x16), codegen


@intrinsic
def vmul(typingctx, a, b):
    def codegen(context, builder, signature, args):
        return builder.fmul(args[0], args[1])

    return f32x16(f32x16, f32x16), codegen
