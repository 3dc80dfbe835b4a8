"""NaN inputs of any sign and payload give NaN in the same places on every backend and SIMD level,
and every other result the same bits (README "Special values": a NaN result's sign and payload
are not specified, IEEE 754 leaves them open).

Which operand's NaN a result carries depends on the instruction: a subtraction passes on its
first operand's, a fused multiply-add the one of the operand it reads first, and the compiled
kernels take float32 differences on the multiply-add units (csrc/vectors.h FL2_VSUB_M).  So
y_true and y_pred hold NaNs of different signs and payloads, quiet and signalling, alone and
facing each other, in some blocks and not in others; every function, reduction, layout and
dtype is compared with the NumPy backend's result, NaNs as NaNs."""

import numpy as np
import pytest

import fastl2
from cases import AND_GRAD_FUNCTIONS, LOSS_FUNCTIONS

core = fastl2._backends.compiled_module()
N = 3 * 8192 + 77  # (three blocks and a tail: the vector loops and the scalar ones)

# (payload bits of the two operands' NaNs; quiet and signalling, either sign)
NANS = {
    np.float16: (np.uint16, [0x7E01, 0xFE02, 0x7C03, 0xFD04]),
    np.float32: (np.uint32, [0x7FC00001, 0xFFC00002, 0x7F800003, 0xFFA00004]),
    np.float64: (np.uint64, [0x7FF8000000000001, 0xFFF8000000000002, 0x7FF0000000000003,
                             0xFFF4000000000004]),
}


def _inputs(dtype):
    rng = np.random.default_rng(5)
    y_true = rng.standard_normal(N).astype(dtype)
    y_pred = rng.standard_normal(N).astype(dtype)
    carrier, payloads = NANS[dtype]
    t, p = y_true.view(carrier), y_pred.view(carrier)
    # block 0: NaNs facing each other (every pairing of payloads); block 1: y_true's alone;
    # block 2: y_pred's alone; the tail: both kinds; block 3's other elements stay finite
    for k in range(64):
        t[100 + k] = payloads[k % 4]
        p[100 + k] = payloads[(k // 4) % 4]
        t[8192 + 300 + k] = payloads[k % 4]
        p[2 * 8192 + 500 + k] = payloads[k % 4]
    t[N - 20:N - 10] = payloads[1]
    p[N - 15:N - 5] = payloads[2]
    weights = (rng.random(N) + 0.5).astype(dtype)
    return y_true, y_pred, weights


def _everything(y_true, y_pred, weights):
    results = []
    for name, and_grad in zip(LOSS_FUNCTIONS, AND_GRAD_FUNCTIONS):
        for reduction in ("mean", "sum", "none"):
            results.append(getattr(fastl2, name)(y_true, y_pred, reduction=reduction))
            results.extend(getattr(fastl2, and_grad)(y_true, y_pred, reduction=reduction))
        results.append(getattr(fastl2, name)(y_true, y_pred, weights, reduction="weighted_mean"))
        results.extend(getattr(fastl2, and_grad)(y_true, y_pred, weights, reduction="weighted_mean"))
        results.append(getattr(fastl2, name)(y_true[::2], y_pred[::2]))  # (a step-2 view, in place)
        cut = N // 7 * 7
        results.append(getattr(fastl2, name)(y_true[:cut].reshape(-1, 7), y_pred[:cut].reshape(-1, 7), axis=0))
        results.append(getattr(fastl2, name)(y_true[:cut].reshape(-1, 7), y_pred[:cut].reshape(-1, 7), axis=-1))
    return [_canonical(np.asarray(r)) for r in results]


def _canonical(result):
    """The result's bytes with every NaN made the one quiet NaN of its dtype."""
    result = np.array(result)  # (a copy)
    result[np.isnan(result)] = np.nan
    return result.tobytes()


def _runs():
    """(name, setup) of every backend, and of every SIMD level of the compiled one."""
    runs = [(backend, None) for backend in fastl2.available_backends()]
    if core is not None:
        for level in core.simd_levels_available():
            runs += [(f"cython {level}", (level, 0))]
            if level == "avx512":
                runs += [("cython avx512 with avx2 float32 runs", (level, 1))]
    return runs


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nan_inputs_give_nan_in_the_same_places_and_other_bits_alike_everywhere(dtype, restore_level):
    inputs = _inputs(dtype)
    previous = fastl2.get_backend()
    results = {}
    try:
        for name, setup in _runs():
            if setup is None:
                fastl2.set_backend(name)
            else:
                fastl2.set_backend("cython")
                core.set_float32_runs(setup[1])
                core.set_simd_level(setup[0])
            results[name] = _everything(*inputs)
    finally:
        fastl2.set_backend(previous)
        if core is not None:
            core.set_float32_runs(-1)
    reference = results["numpy"]
    for name, got in results.items():
        differing = [k for k, (a, b) in enumerate(zip(got, reference)) if a != b]
        assert not differing, f"{name}: results {differing[:10]} differ from the NumPy backend's"
    # (the NaNs reached the results: each function's mean is NaN)
    assert all(np.isnan(getattr(fastl2, name)(*inputs[:2])) for name in LOSS_FUNCTIONS)
