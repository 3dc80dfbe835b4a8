"""fastl2 as a user's code calls it, with the types a type checker must see.

tests/test_typing.py checks this file with ``mypy --strict`` (every ``assert_type`` must
hold: real types, not Any) and runs it, so that the asserted types are the ones returned.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

import fastl2

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # Python 3.10
    from typing_extensions import assert_type

FloatArray = NDArray[np.floating[Any]]


def is_scalar(value: object) -> bool:
    return isinstance(value, np.floating) and value.dtype in (np.float32, np.float64)


def is_array(value: object, shape: tuple[int, ...]) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.shape == shape


y_true = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
y_pred = y_true + np.array([0.5, -1.0, 2.0])
sample_weights = np.array([1.0, 3.0])

# ---- losses: a NumPy scalar when everything is reduced, an ndarray along an axis -----------

loss = fastl2.mse(y_true, y_pred)
assert_type(loss, np.floating[Any])
assert is_scalar(loss)
assert_type(float(loss), float)

assert_type(fastl2.mse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]), np.floating[Any])
assert_type(fastl2.mse(y_true, y_pred, sample_weights, reduction="weighted_mean"), np.floating[Any])
assert_type(fastl2.mse(y_true, y_pred, reduction="sum"), np.floating[Any])
assert_type(fastl2.mae(y_true, y_pred), np.floating[Any])
assert_type(fastl2.huber(y_true, y_pred, delta=0.5), np.floating[Any])
assert_type(fastl2.huber(y_true, y_pred, axis=0), FloatArray)
assert_type(fastl2.huber_grad(y_true, y_pred, delta=2.0), FloatArray)
assert_type(fastl2.huber_and_grad(y_true, y_pred), tuple[np.floating[Any], FloatArray])
assert is_array(fastl2.huber_grad(y_true, y_pred, sample_weights, delta=2.0), (2, 3))
assert_type(fastl2.rmse(y_true, y_pred, sample_weights, reduction="weighted_mean"), np.floating[Any])
assert is_scalar(fastl2.rmse(y_true.astype(np.float32), y_pred.astype(np.float32)))

per_sample = fastl2.mse(y_true, y_pred, axis=-1)
assert_type(per_sample, FloatArray)
assert is_array(per_sample, (2,))
per_output = fastl2.mae(y_true, y_pred, axis=0, reduction="sum")
assert_type(per_output, FloatArray)
assert is_array(per_output, (3,))
everything = fastl2.mse(y_true, y_pred, axis=(0, 1))  # naming every axis gives a 0-d array
assert_type(everything, FloatArray)
assert is_array(everything, ())
assert_type(fastl2.rmse(y_true, y_pred, axis=np.int64(1)), FloatArray)

elementwise = fastl2.mse(y_true, y_pred, reduction="none")
assert_type(elementwise, FloatArray)
assert is_array(elementwise, (2, 3))
assert_type(fastl2.mae(y_true, y_pred, reduction="none"), FloatArray)


def loss_with(reduction: Literal["mean", "none"], axis: int | None) -> None:
    """Non-literal arguments: the union of what each value gives."""
    assert_type(fastl2.mse(y_true, y_pred, reduction=reduction), np.floating[Any] | FloatArray)
    assert_type(fastl2.mse(y_true, y_pred, axis=axis), np.floating[Any] | FloatArray)


loss_with("none", None)

# ---- gradients: ndarrays of y_pred's shape; (loss, grad) tuples ----------------------------

grad = fastl2.mse_grad(y_true, y_pred)
assert_type(grad, FloatArray)
assert is_array(grad, (2, 3))
assert_type(fastl2.mae_grad(y_true, y_pred, sample_weights, reduction="weighted_mean"), FloatArray)

buffer = np.empty_like(y_pred)
assert_type(fastl2.mse_grad(y_true, y_pred, out=buffer), FloatArray)
assert fastl2.mse_grad(y_true, y_pred, out=buffer) is buffer

pair = fastl2.mse_and_grad(y_true, y_pred)
assert_type(pair, tuple[np.floating[Any], FloatArray])
loss, grad = pair
assert is_scalar(loss) and is_array(grad, (2, 3))
assert_type(fastl2.mae_and_grad(y_true, y_pred, reduction="sum"), tuple[np.floating[Any], FloatArray])

losses, grad = fastl2.mae_and_grad(y_true, y_pred, reduction="none")
assert_type(losses, FloatArray)
assert is_array(losses, (2, 3)) and is_array(grad, (2, 3))
assert_type(fastl2.mse_and_grad(y_true, y_pred, reduction="none", out=buffer), tuple[FloatArray, FloatArray])

learning_rate = 0.1
for _ in range(3):  # a training step: y_pred updated in place from its gradient
    loss, grad = fastl2.mse_and_grad(y_true, y_pred, out=buffer)
    y_pred -= learning_rate * grad

# ---- the L2 penalty: one array, or a list / tuple / iterator of arrays --------------------

layers: list[FloatArray] = [np.ones((3, 2)), np.full(4, 2.0, dtype=np.float32)]


def parameters() -> Iterator[NDArray[np.float64]]:
    yield np.ones(5)
    yield np.zeros((2, 2))


assert_type(fastl2.l2_penalty(layers[0], 1e-3), np.floating[Any])
assert_type(fastl2.l2_penalty(layers, np.float32(0.5)), np.floating[Any])
assert_type(fastl2.l2_penalty(parameters(), np.array(0.5)), np.floating[Any])
assert_type(fastl2.l2_penalty([1.0, -2.0, 2.0], 0.5), np.floating[Any])
assert is_scalar(fastl2.l2_penalty(parameters(), 1))

one = fastl2.l2_penalty_grad(layers[0], 0.5)
assert_type(one, FloatArray)
assert is_array(one, (3, 2))
assert_type(fastl2.l2_penalty_grad([1.0, -2.0], 0.25), FloatArray)  # a list of numbers: one array
assert is_array(fastl2.l2_penalty_grad([np.float64(1.0), np.float64(2.0)], 0.25), (2,))
assert_type(fastl2.l2_penalty_grad([np.float64(1.0), np.float64(2.0)], 0.25), FloatArray)
assert_type(fastl2.l2_penalty_grad(layers[0], 0.5, out=layers[0]), FloatArray)  # in place

grads = fastl2.l2_penalty_grad(layers, 0.5)
assert_type(grads, list[FloatArray])
assert isinstance(grads, list) and [g.shape for g in grads] == [(3, 2), (4,)]
assert_type(fastl2.l2_penalty_grad(tuple(layers), 0.5), list[FloatArray])
assert_type(fastl2.l2_penalty_grad(parameters(), 0.5), list[FloatArray])
assert_type(fastl2.l2_penalty_grad(layers, 0.5, out=layers), list[FloatArray])  # in place
for layer, layer_grad in zip(layers, fastl2.l2_penalty_grad(layers, 0.5)):
    layer -= learning_rate * layer_grad

# ---- configuration -------------------------------------------------------------------

assert_type(fastl2.get_backend(), str)
assert_type(fastl2.available_backends(), list[str])
fastl2.set_backend(fastl2.get_backend())
threads = fastl2.get_num_threads()
assert_type(threads, int)
fastl2.set_num_threads(threads)
assert_type(fastl2.get_gradient_cache_limit(), int)
assert_type(fastl2.__version__, str)
