"""Numba runtime helpers: array views that carry no reference count.

Numba counts references to every array it passes between compiled functions with atomic
increments and decrements on the array's memory record. Its pruning pass removes them in simple
functions only: a per-position helper with loops and branches kept eight atomics per call, and on
arrays the prediction threads share (the weights) each one contends for the same cache line
between cores. They cost more than the helper's arithmetic (layer 1 of the default preset: 13 µs
of 62 per sample). An :func:`unowned` view has no memory record, so passing it costs nothing.

The rule for kernels: only an entry kernel (one called from Python) makes unowned views, and only
of its arguments, which the Python caller keeps alive for the whole call; nested calls get the
views. Never view an array the kernel allocated itself: numba frees a variable right after its
last use, which would be the call that made the view (so the caller allocates the scratch).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _strip(context, builder, array_type, value):
    source = context.make_array(array_type)(context, builder, value)
    view = context.make_array(array_type)(context, builder)
    context.populate_array(view, data=source.data, shape=source.shape, strides=source.strides,
                           itemsize=source.itemsize, meminfo=None, parent=None)
    return view._getvalue()


@intrinsic
def unowned(typingctx, arrays):
    """The same array (data, shape, strides) without its memory record, so no reference counting;
    of a tuple of arrays, the tuple of such views. The caller keeps an owner of the memory alive
    for as long as a view is used."""
    if isinstance(arrays, types.Array):
        def codegen(context, builder, signature, args):
            return _strip(context, builder, signature.args[0], args[0])

        return arrays(arrays), codegen
    if isinstance(arrays, types.BaseTuple) and all(isinstance(t, types.Array) for t in arrays.types):
        def codegen(context, builder, signature, args):
            out = ir.Constant(context.get_value_type(signature.return_type), ir.Undefined)
            for i, array_type in enumerate(signature.args[0].types):
                element = builder.extract_value(args[0], i)
                out = builder.insert_value(out, _strip(context, builder, array_type, element), i)
            return out

        return arrays(arrays), codegen
    raise TypeError(f"unowned needs an array or a tuple of arrays, got {arrays}")
