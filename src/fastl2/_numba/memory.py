"""The kernels' raw memory access: stack buffers, loads and stores at byte addresses, streaming
stores and their fence (Numba intrinsics), and the gather and scatter of the strided kernels'
runs (csrc/strided.c element_at, copy_run).

Helpers of the kernels: compiled into each kernel (and cached with it), never called alone.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .config import _MAX_DIMS, _STREAMING_STORES


@intrinsic
def _stack_buffer(typingctx, count, dtype):
    """A pointer to ``count`` (a literal int) uninitialised values on the stack.

    Lane accumulators on the stack, unlike NumPy arrays, are private to the function, so LLVM
    keeps them in registers.  ``dtype`` is a NumPy float type.
    """
    if not isinstance(count, types.IntegerLiteral) or not isinstance(dtype, types.NumberClass):
        return None
    element = dtype.instance_type
    size = count.literal_value

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(element), size=size)

    return types.CPointer(element)(count, dtype), codegen


@intrinsic
def _stream_store_16(typingctx, array, index, values):
    """array[index:index + 16] = values[:16] (a stack buffer of float64), one streaming store.

    The caller checks that &array[index] is 16-byte aligned; values are rounded to the
    array's dtype exactly as an assignment does.
    """
    if not isinstance(array, types.Array) or not isinstance(array.dtype, types.Float):
        return None

    def codegen(context, builder, signature, args):
        array_type, index_type, _ = signature.args
        data = context.make_array(array_type)(context, builder, args[0]).data
        start = builder.gep(data, [context.cast(builder, args[1], index_type, types.intp)])
        element = context.get_value_type(array_type.dtype)
        vector_type = ir.VectorType(element, 16)
        vector = ir.Constant(vector_type, ir.Undefined)
        for k in range(16):
            value = builder.load(builder.gep(args[2], [ir.IntType(64)(k)]))
            value = context.cast(builder, value, types.float64, array_type.dtype)
            vector = builder.insert_element(vector, value, ir.IntType(32)(k))
        store = builder.store(vector, builder.bitcast(start, vector_type.as_pointer()), align=16)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
        return context.get_dummy_value()

    return types.void(array, index, values), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (float64; LLVM's llvm.fma: the instruction where the CPU has
    it, libm's correctly rounded fma where not; csrc/internal.h fl2_fma)."""
    if not all(isinstance(t, types.Float) for t in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        values = [context.cast(builder, v, t, types.float64) for v, t in zip(args, signature.args)]
        function = builder.module.declare_intrinsic("llvm.fma", [double],
                                                    ir.FunctionType(double, [double] * 3))
        return builder.call(function, values)

    return types.float64(a, b, c), codegen


@intrinsic
def _flag_set(typingctx, flag):
    """flag[0] != 0 for a uint8 array ``flag`` that another thread may set while the kernel
    runs (pool.py's cancel flag): an atomic (monotonic) load, which LLVM never
    hoists out of a loop as it may a plain one."""
    if not isinstance(flag, types.Array) or flag.dtype != types.uint8:
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        value = builder.load_atomic(data, "monotonic", 1)
        return builder.icmp_unsigned("!=", value, ir.Constant(value.type, 0))

    return types.boolean(flag), codegen


@intrinsic
def _store_fence(typingctx):
    """x86 sfence: orders this thread's streaming stores before whatever it does next."""

    def codegen(context, builder, signature, args):
        if _STREAMING_STORES:  # (elsewhere the kernels make no streaming stores)
            sfence = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence"
            )
            builder.call(sfence, [])
        return context.get_dummy_value()

    return types.void(), codegen


# Raw memory access for the strided kernels (run_strided): arrays in any layout are read and
# written where they lie, through the address of their element (0, ..., 0) and byte strides,
# as csrc/strided.c does.  ``like`` (an array) only gives the element type.

def _address_type(address, like):
    """The pointer type of _load's and _pointer's integer ``address``: to ``like``'s dtype
    (``like`` an array); None for other types (not theirs to type)."""
    if isinstance(address, types.Integer) and isinstance(like, types.Array):
        return types.CPointer(like.dtype)
    return None


def _cast_address(context, builder, signature, args):
    """The integer args[0] as a pointer of signature's return type (_pointer's code)."""
    return builder.inttoptr(args[0], context.get_value_type(signature.return_type))


@intrinsic
def _load(typingctx, address, like):
    """The value of ``like``'s dtype at byte address ``address`` (any alignment)."""
    pointer = _address_type(address, like)
    if pointer is None:
        return None

    def codegen(context, builder, signature, args):
        at = _cast_address(context, builder, pointer(address, like), args)
        return builder.load(at, align=1)

    return like.dtype(address, like), codegen


@intrinsic
def _store(typingctx, address, value):
    """Stores ``value`` (a float, in its own type) at byte address ``address`` (any alignment)."""
    if not isinstance(address, types.Integer) or not isinstance(value, types.Float):
        return None

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], context.get_value_type(value).as_pointer())
        builder.store(args[1], pointer, align=1)
        return context.get_dummy_value()

    return types.void(address, value), codegen


@intrinsic
def _pointer(typingctx, address, like):
    """``address`` as a pointer to ``like``'s dtype (for numba.carray; aligned addresses only)."""
    pointer = _address_type(address, like)
    return None if pointer is None else (pointer(address, like), _cast_address)


def _element_at(address, shape, strides, first, end, index):
    """csrc/strided.c element_at: the address of element ``index`` (C order over the dims
    first..end-1 of ``shape``) of an operand whose element at index 0 is at ``address``."""
    dim = end - 1
    while dim >= first and index:
        address += (index % shape[dim]) * strides[dim]
        index //= shape[dim]
        dim -= 1
    return address


_element_at = njit(_element_at)


#: What a float32 element is read as (_copy_run's conversions: its dtype only).
_FLOAT32_LIKE = np.empty(0, np.float32)


def _copy_run(buffer, address, shape, strides, first, start, count, to_array, itemsize):
    """csrc/strided.c copy_run: elements start..start+count-1 (C order over the dims first..
    of ``shape``) of the operand at ``address`` into ``buffer[:count]``; or back, ``to_array``.
    An operand of ``itemsize`` 4 with a float64 buffer is float32 converted exactly into it,
    or rounded once (to nearest even) back into it: the operands of a call with a float64
    result are all read through float64 code (see strided.py)."""
    convert = itemsize != buffer.itemsize
    nd = shape.shape[0]
    index = numba.carray(_stack_buffer(_MAX_DIMS, np.int64), _MAX_DIMS)
    rest = start
    at = address
    for dim in range(nd - 1, first - 1, -1):
        index[dim] = rest % shape[dim]
        rest //= shape[dim]
        at += index[dim] * strides[dim]
    last = nd - 1
    step = strides[last]
    position = 0
    while count > 0:
        run = min(shape[last] - index[last], count)
        if to_array and convert:
            for i in range(run):
                _store(at + i * step, np.float32(buffer[position + i]))
        elif to_array:
            for i in range(run):
                _store(at + i * step, buffer[position + i])
        elif convert:
            for i in range(run):
                buffer[position + i] = _load(at + i * step, _FLOAT32_LIKE)
        else:
            for i in range(run):
                buffer[position + i] = _load(at + i * step, buffer)
        position += run
        count -= run
        # Advance the odometer by ``run`` elements: the last dim ends or the count does.
        index[last] += run
        at += run * step
        dim = last
        while dim > first and index[dim] == shape[dim]:
            at -= shape[dim] * strides[dim]
            index[dim] = 0
            index[dim - 1] += 1
            at += strides[dim - 1]
            dim -= 1


_copy_run = njit(_copy_run)


def _block_place(direct, here, buffer, like, count):
    """Where a block of the strided kernels has the ``count`` elements of one operand (of
    ``like``'s dtype): where they lie, at byte address ``here``, when ``direct`` (one
    contiguous, aligned piece); else ``buffer``."""
    if direct:
        return numba.carray(_pointer(here, like), count)
    return buffer


_block_place = njit(inline="always")(_block_place)


def _block_gathered(direct, here, buffer, like, address, shape, strides, first, start, count,
                    itemsize):
    """_block_place of an input: elements start..start+count-1 of the operand at ``address``
    (of ``itemsize``: see _copy_run), gathered into ``buffer`` first unless ``direct``."""
    if not direct:
        _copy_run(buffer, address, shape, strides, first, start, count, False, itemsize)
    return _block_place(direct, here, buffer, like, count)


_block_gathered = njit(inline="always")(_block_gathered)
