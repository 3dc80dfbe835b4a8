"""Mistakes a type checker must catch in a user's calls to fastl2 (never run: most raise).

tests/test_typing.py checks this file with ``mypy --strict`` and expects exactly the errors
marked ``# E: <mypy error code>`` on their lines, and none elsewhere.
"""

from __future__ import annotations

import numpy as np

import fastl2

y_true = np.zeros((2, 3))
y_pred = np.ones((2, 3))
params = [np.ones(3), np.ones((2, 2))]

# Reductions are literals: a misspelt or unsupported one is an error before run time.
fastl2.mse(y_true, y_pred, reduction="avg")  # E: call-overload
fastl2.mse_and_grad(y_true, y_pred, reduction="average")  # E: call-overload
fastl2.rmse(y_true, y_pred, reduction="sum")  # E: call-overload
fastl2.mse(y_true, y_pred, axis=0, reduction="none")  # E: call-overload
reduction = "mean"  # inferred as str: pass a literal, or annotate the variable with a Literal
fastl2.mae(y_true, y_pred, reduction=reduction)  # E: call-overload

# Arguments of the wrong kind.
fastl2.mse(None, y_pred)  # E: call-overload
fastl2.mse(y_true, {"a": 1.0})  # E: call-overload
fastl2.mse(y_true, y_pred, axis=[0, 1])  # E: call-overload
fastl2.mse_grad(y_true, y_pred, axis=0)  # E: call-arg
fastl2.mse_grad(y_true, y_pred, out=[0.0, 0.0])  # E: arg-type
fastl2.l2_penalty(params, lam="0.1")  # E: arg-type
fastl2.set_num_threads("4")  # E: arg-type

# Results used as what they are not.
len(fastl2.mse(y_true, y_pred))  # E: arg-type
fastl2.mse_and_grad(y_true, y_pred)[2]  # E: misc
fastl2.l2_penalty_grad(params, 0.1).shape  # E: attr-defined
loss: float = fastl2.mse(y_true, y_pred)  # E: assignment
