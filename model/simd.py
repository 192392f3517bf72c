"""Explicit 16-lane float32 vectors for numba kernels.

Our kernels compile without fastmath (see :mod:`model.kernels`), so LLVM keeps every floating-
point sum in source order and will not vectorise a reduction by itself. These intrinsics emit
LLVM vector operations directly: the kernel author chooses which values share a vector and so
fixes the summation order, and the code still runs 16 lanes at a time. Each lane does exactly the
scalar IEEE operations written (no fused multiply-add), so results are the same on every x86-64
host whatever vector width LLVM lowers ``<16 x float>`` to.

``vload(a, i)``/``vstore(a, i, v)`` read/write ``a.flat[i:i+16]`` of a C-contiguous float32 array
(the caller keeps ``i + 16 <= a.size``); ``vzero()``, ``vsplat(x)``, ``vadd``, ``vsub``, ``vmul`` are
what they say; ``vmax(a, b)`` is ``b > a ? b : a`` per lane, ``vhmax(v)`` the largest lane and
``vfirst_equal(v, x)`` the first lane equal to ``x`` (16 if none): exact whatever the order, for
NaN-free values. ``vhalves_add(acc, v)`` adds the two 8-lane halves of ``v`` to the 8-lane ``acc``
in turn (lanes 0-7, then 8-15) and ``vtree_sum(acc)`` is ``((a0+a1)+(a2+a3))+((a4+a5)+(a6+a7))``:
together they replay :func:`model.kernels.lane_sum`'s order on a 16-lane vector.

Numba's on-disk cache checks only the source file of each cached function, not the modules it
calls into: after editing this module (or :mod:`model.rules`), delete the ``*.nbi``/``*.nbc``
files under ``model/__pycache__`` so the kernels are compiled again.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, register_model

LANES = 16
_VECTOR = ir.VectorType(ir.FloatType(), LANES)
_HALF = ir.VectorType(ir.FloatType(), LANES // 2)


class F32x16(types.Type):
    """numba type of a ``<16 x float>`` value (lives in registers; never in an array)."""

    def __init__(self):
        super().__init__(name="F32x16")


f32x16 = F32x16()


class F32x8(types.Type):
    """numba type of a ``<8 x float>`` value."""

    def __init__(self):
        super().__init__(name="F32x8")


f32x8 = F32x8()


@register_model(F32x16)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


@register_model(F32x8)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _HALF)


def _check_float32(value) -> None:
    if value != types.float32:  # numba would otherwise round a float64 silently
        raise TypeError(f"simd needs a float32 value, got {value}")


def _check_float32_array(array) -> None:
    if not (isinstance(array, types.Array) and array.dtype == types.float32 and array.layout == "C"):
        raise TypeError(f"simd needs a C-contiguous float32 array, got {array}")


def _address(context, builder, array_type, array, offset):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [offset]), _VECTOR.as_pointer())


@intrinsic
def vload(typingctx, array, offset):
    """The 16 values ``array.flat[offset:offset+16]`` of a C-contiguous float32 array of any
    dimension (no reshape needed: that is a runtime call in numba)."""
    _check_float32_array(array)

    def codegen(context, builder, signature, args):
        return builder.load(_address(context, builder, signature.args[0], args[0], args[1]), align=4)

    return f32x16(array, types.intp), codegen


@intrinsic
def vstore(typingctx, array, offset, vector):
    """Store 16 values at ``array.flat[offset:offset+16]`` (as :func:`vload`)."""
    _check_float32_array(array)

    def codegen(context, builder, signature, args):
        builder.store(args[2], _address(context, builder, signature.args[0], args[0], args[1]), align=4)
        return context.get_dummy_value()

    return types.void(array, types.intp, f32x16), codegen


def _raw_address(builder, address, offset):
    data = builder.inttoptr(address, ir.FloatType().as_pointer())
    return builder.bitcast(builder.gep(data, [offset]), _VECTOR.as_pointer())


def _check_address(address) -> None:
    if not isinstance(address, types.Integer):
        raise TypeError(f"simd needs an integer address (array.ctypes.data), got {address}")


@intrinsic
def vload_at(typingctx, address, offset):
    """:func:`vload` from float32 data at ``address`` (an ``array.ctypes.data``) + ``offset`` values.

    For helpers inlined into a per-position loop: an array passed to an inlined helper becomes
    a new reference, and numba counts it with calls into its runtime (one per array on entry,
    one on exit, each spilling the vector registers) that its pruning pass cannot remove across
    the helper's loops. An address is a plain integer. The caller keeps the array alive."""
    _check_address(address)

    def codegen(context, builder, signature, args):
        return builder.load(_raw_address(builder, args[0], args[1]), align=4)

    return f32x16(address, types.intp), codegen


@intrinsic
def vstore_at(typingctx, address, offset, vector):
    """Store 16 values at ``address`` + ``offset`` values (as :func:`vload_at`)."""
    _check_address(address)

    def codegen(context, builder, signature, args):
        builder.store(args[2], _raw_address(builder, args[0], args[1]), align=4)
        return context.get_dummy_value()

    return types.void(address, types.intp, f32x16), codegen


@intrinsic
def vzero(typingctx):
    def codegen(context, builder, signature, args):
        return ir.Constant(_VECTOR, [0.0] * LANES)

    return f32x16(), codegen


def _shuffle_mask(lanes: list[int]) -> ir.Constant:
    return ir.Constant(ir.VectorType(ir.IntType(32), len(lanes)), lanes)


def _splat(builder, value):
    one = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, one, _shuffle_mask([0] * LANES))


@intrinsic
def vsplat(typingctx, value):
    _check_float32(value)

    def codegen(context, builder, signature, args):
        return _splat(builder, args[0])

    return f32x16(types.float32), codegen


def _lanewise(operation: str):
    """A lane-by-lane ``<16 x float>`` operation, ``operation`` naming the IR builder's method."""

    def typer(typingctx, a, b):
        def codegen(context, builder, signature, args):
            return getattr(builder, operation)(args[0], args[1])

        return f32x16(f32x16, f32x16), codegen

    return intrinsic(typer)


vadd = _lanewise("fadd")
vsub = _lanewise("fsub")
vmul = _lanewise("fmul")


@intrinsic
def vmax(typingctx, a, b):
    def codegen(context, builder, signature, args):
        return builder.select(builder.fcmp_ordered(">", args[1], args[0]), args[1], args[0])

    return f32x16(f32x16, f32x16), codegen


def _lane(builder, vector, i):
    return builder.extract_element(vector, ir.Constant(ir.IntType(32), i))


@intrinsic
def vhmax(typingctx, vector):
    def codegen(context, builder, signature, args):
        # fold the upper half onto the lower one until a lane is left (any order gives the same
        # maximum; shuffles keep it in vector registers)
        v = args[0]
        width = LANES // 2
        while width >= 1:
            upper = builder.shuffle_vector(v, v, _shuffle_mask([(i + width) % LANES for i in range(LANES)]))
            v = builder.select(builder.fcmp_ordered(">", upper, v), upper, v)
            width //= 2
        return _lane(builder, v, 0)

    return types.float32(f32x16), codegen


@intrinsic
def vfirst_equal(typingctx, vector, value):
    _check_float32(value)

    def codegen(context, builder, signature, args):
        mask = builder.bitcast(builder.fcmp_ordered("==", args[0], _splat(builder, args[1])), ir.IntType(LANES))
        first = builder.cttz(mask, ir.Constant(ir.IntType(1), 0))  # 16 when no lane matches
        return builder.zext(first, ir.IntType(64))

    return types.int64(f32x16, types.float32), codegen


@intrinsic
def vzero_half(typingctx):
    def codegen(context, builder, signature, args):
        return ir.Constant(_HALF, [0.0] * (LANES // 2))

    return f32x8(), codegen


@intrinsic
def vhalves_add(typingctx, acc, vector):
    def codegen(context, builder, signature, args):
        half = LANES // 2
        low = builder.shuffle_vector(args[1], args[1], _shuffle_mask(list(range(half))))
        high = builder.shuffle_vector(args[1], args[1], _shuffle_mask(list(range(half, LANES))))
        return builder.fadd(builder.fadd(args[0], low), high)

    return f32x8(f32x8, f32x16), codegen


@intrinsic
def vtree_sum(typingctx, acc):
    def codegen(context, builder, signature, args):
        a = [_lane(builder, args[0], i) for i in range(LANES // 2)]
        return builder.fadd(builder.fadd(builder.fadd(a[0], a[1]), builder.fadd(a[2], a[3])),
                            builder.fadd(builder.fadd(a[4], a[5]), builder.fadd(a[6], a[7])))

    return types.float32(f32x8), codegen


@intrinsic
def nonzero_lanes(typingctx, array, offset):
    """Bit mask of the 16 values ``array.flat[offset:offset+16]`` that are not zero (bit i for
    value i; ``-0.0`` counts as zero, NaN as non-zero, as ``v != 0.0``) of a C-contiguous float
    array: one vector compare instead of 16 tests."""
    if not (isinstance(array, types.Array) and isinstance(array.dtype, types.Float) and array.layout == "C"):
        raise TypeError(f"nonzero_lanes needs a C-contiguous float array, got {array}")

    def codegen(context, builder, signature, args):
        element = context.get_value_type(signature.args[0].dtype)
        vector_type = ir.VectorType(element, LANES)
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        vector = builder.load(builder.bitcast(builder.gep(data, [args[1]]), vector_type.as_pointer()), align=4)
        mask = builder.fcmp_unordered("!=", vector, ir.Constant(vector_type, [0.0] * LANES))
        return builder.zext(builder.bitcast(mask, ir.IntType(LANES)), ir.IntType(64))

    return types.int64(array, types.intp), codegen


@intrinsic
def lowest_bit(typingctx, mask):
    """Index of the lowest set bit of a non-zero int64 (count of trailing zeros)."""
    if mask != types.int64:
        raise TypeError(f"lowest_bit needs an int64, got {mask}")

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.int64(types.int64), codegen
