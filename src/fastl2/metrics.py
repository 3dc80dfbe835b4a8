"""scikit-learn's regression metrics, computed by fastl2's kernels and correctly rounded.

``from fastl2.metrics import mean_squared_error`` replaces
``from sklearn.metrics import mean_squared_error``: the same signatures
(``sample_weight``, ``multioutput``), the same input checks, error types and return types
(a Python ``float``, or a NumPy array for ``multioutput="raw_values"``), for the five metrics
below.  What differs is the speed (one pass, multithreaded, no temporaries) and the last bits:
each per-output error is the exact value of the inputs as scikit-learn converts them, rounded
once, where scikit-learn's own sums are rounded at every step.  scikit-learn is not needed.

Semantics (scikit-learn 1.9's ``sklearn.metrics._regression``):

- ``y_true``, ``y_pred``: array-likes of shape (n_samples,) or (n_samples, n_outputs); lists,
  tuples, NumPy arrays, pandas objects.  They are converted to the floating dtype of the
  floating-point inputs that have a dtype (``numpy.result_type`` of them; float64 when there
  is none): float32 inputs give float32 per-output errors, integers float64.  Numeric strings
  and objects are converted; NaN, infinity, complex values, 3-D input, zero samples or zero
  outputs raise ``ValueError``; a scalar raises ``TypeError``.  (n,) beside (n, 1) is one
  output.
- ``sample_weight``: array-like of shape (n_samples,) (any sign, finite, not all zero), or
  None.  Weights that sum to exactly zero raise ``ZeroDivisionError``, as ``numpy.average``
  does.
- ``multioutput``: ``"raw_values"`` (the per-output errors, an array of shape (n_outputs,)),
  ``"uniform_average"`` (their mean) or an array-like of n_outputs weights (their weighted
  mean; ``ValueError`` with a single output).  Anything else raises
  :class:`InvalidParameterError`, a ``ValueError`` and a ``TypeError`` as scikit-learn's is.

What is correctly rounded (round-half-even to the result dtype, of the exact value):

- every per-output error of ``mean_squared_error``, ``mean_absolute_error`` and
  ``mean_squared_log_error`` (of the logarithms ``numpy.log1p`` returns, as scikit-learn takes
  them) and the square root of the exact per-output mean for the two root metrics;
- ``"uniform_average"`` of the three mean metrics: the mean over outputs of per-output means
  with one set of sample weights is the pooled weighted mean over all elements, computed
  exactly (one call of the kernels);
- ``"uniform_average"`` of the root metrics and every array ``multioutput``: the average of
  the correctly rounded per-output errors, formed as scikit-learn forms it (``numpy.average``).

float16 inputs are computed in float32 (correctly rounded) and then rounded to float16, so a
float16 result can be 1 ulp from the correctly rounded one (double rounding); with sample
weights the errors are float64, as scikit-learn's are.  Long double inputs are computed from
their values rounded to float64 (more than the last bits can differ there).  The sample
weights' zero sum is decided exactly (``ZeroDivisionError`` where the exact sum is 0, where
scikit-learn tests its rounded sum).  As for fastl2's losses: weights of mixed sign are
correctly rounded up to the condition number 1024 (README), and an element loss that
overflows float64 (a difference beyond about 1.3e154 squared) makes the result inf even where
the exact mean would be finite, as in scikit-learn.

Reference: scikit-learn's User Guide, "Regression metrics" (3.4.6), and
``sklearn/metrics/_regression.py``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "InvalidParameterError",
    "mean_absolute_error",
    "mean_squared_error",
    "mean_squared_log_error",
    "root_mean_squared_error",
    "root_mean_squared_log_error",
]

_MULTIOUTPUT = ("raw_values", "uniform_average")


class InvalidParameterError(ValueError, TypeError):
    """An argument of a type or value the metric does not accept (``multioutput="foo"``, a
    scalar ``y_true``): a ``ValueError`` and a ``TypeError``, as scikit-learn's
    ``InvalidParameterError``."""


# ---- input checks: scikit-learn's validate_params, check_consistent_length, check_array ----

def _is_array_like(value) -> bool:
    return (hasattr(value, "__len__") or hasattr(value, "shape") or hasattr(value, "__array__")) \
        and not np.isscalar(value)


def _check_parameters(function: str, y_true, y_pred, sample_weight, multioutput) -> None:
    for name, value in (("y_true", y_true), ("y_pred", y_pred)):
        if not _is_array_like(value):
            raise InvalidParameterError(
                f"The {name!r} parameter of {function} must be an array-like. Got {value!r} instead.")
    if sample_weight is not None and not _is_array_like(sample_weight):
        raise InvalidParameterError(
            f"The 'sample_weight' parameter of {function} must be an array-like or None. "
            f"Got {sample_weight!r} instead.")
    if isinstance(multioutput, str) and multioutput in _MULTIOUTPUT:
        return
    if isinstance(multioutput, str) or not _is_array_like(multioutput):
        raise InvalidParameterError(
            f"The 'multioutput' parameter of {function} must be a str among "
            f"{{'raw_values', 'uniform_average'}} or an array-like. Got {multioutput!r} instead.")


def _num_samples(value) -> int:
    shape = getattr(value, "shape", None)
    if shape is not None:
        if len(shape) == 0:
            raise TypeError(f"Singleton array {value!r} cannot be considered a valid collection.")
        if isinstance(shape[0], numbers.Integral):
            return int(shape[0])
    return len(value)


def _check_consistent_length(*values) -> None:
    lengths = [_num_samples(value) for value in values if value is not None]
    if len(set(lengths)) > 1:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: {lengths}")


def _floating_dtype(*values) -> np.dtype:
    """scikit-learn's _find_matching_floating_dtype: the result type of the inputs that have a
    dtype and are floating as NumPy arrays (``numpy.asarray(a).dtype``: a torch tensor, a pandas
    column); float64 where none is."""
    floating = []
    for value in values:
        if hasattr(value, "dtype"):
            try:
                dtype = np.asarray(value).dtype
            except (TypeError, ValueError):
                continue  # (_check_array raises the conversion's error, as scikit-learn does)
            if np.issubdtype(dtype, np.floating):
                floating.append(dtype)
    return np.result_type(*floating) if floating else np.dtype(np.float64)


def _as_array(value, dtype):
    """``value`` as a NumPy array of ``dtype`` (None: its own), as scikit-learn's check_array
    converts it: a sequence converted in one step (a complex list raises NumPy's TypeError), a
    pandas object with missing values (nullable dtypes) through ``to_numpy`` with NaN for
    them."""
    if isinstance(value, np.matrix):
        raise TypeError("np.matrix is not supported: convert it with np.asarray")
    if dtype is not None and hasattr(value, "to_numpy") and not isinstance(value, np.ndarray):
        try:  # (pandas)
            return value.to_numpy(dtype=dtype, na_value=np.nan)
        except (TypeError, ValueError):
            pass
    if dtype is not None and not hasattr(value, "__array__") and not hasattr(value, "__array_interface__"):
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            return array.astype(dtype, copy=False)
        if array.dtype.kind == "c":  # (scikit-learn converts a complex list in one step)
            raise TypeError("float() argument must be a string or a real number, not 'complex'")
        return array
    return np.asarray(value)


def _check_array(value, dtype, input_name: str = "", numeric: bool = False) -> np.ndarray:
    """check_array(value, ensure_2d=False, dtype=dtype) of scikit-learn: converted, at most 2-D,
    not empty; finite where ``numeric`` (dtype="numeric", which keeps integer dtypes).  The
    targets' and weights' finiteness is checked where the metric is not finite (_metric): a
    non-finite element makes every kernel's result NaN or infinite, so a finite result needs
    no second pass over the data."""
    array = _as_array(value, None if numeric else dtype)
    if array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported\n{value!r}\n")
    if numeric:
        if array.dtype.kind in "USV":
            raise ValueError(
                "dtype='numeric' is not compatible with arrays of bytes/strings. Convert your "
                "data to numeric values explicitly instead.")
        if array.dtype.kind == "O":
            array = array.astype(np.float64)
    else:
        array = array.astype(dtype, copy=False)
    if array.ndim >= 3:
        raise ValueError(f"Found array with dim {array.ndim}, while dim <= 2 is required.")
    if array.ndim == 0:
        raise TypeError(f"Singleton array {array!r} cannot be considered a valid collection.")
    if numeric and array.dtype.kind == "f":
        _check_finite(array, input_name)
    if array.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={array.shape}) while a minimum of "
                         "1 is required.")
    if array.ndim == 2 and array.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={array.shape}) while a minimum of "
                         "1 is required.")
    return array


def _check_finite(array: np.ndarray, input_name: str = "") -> None:
    where = f"Input {input_name} contains" if input_name else "Input contains"
    if array is None or array.dtype.kind != "f":
        return
    if np.isnan(array).any():
        raise ValueError(f"{where} NaN.")
    if not np.isfinite(array).all():
        raise ValueError(f"{where} infinity or a value too large for {array.dtype!r}.")


def _check_outputs(y_true, y_pred, multioutput, check_multioutput: bool):
    """(y_true, y_pred) as (n_samples, n_outputs), their output counts compared, and an
    array-like ``multioutput`` checked against them (NumPy or Dask arrays: fastl2.dask's
    metrics share it)."""
    y_true = y_true.reshape(-1, 1) if y_true.ndim == 1 else y_true
    y_pred = y_pred.reshape(-1, 1) if y_pred.ndim == 1 else y_pred
    if y_true.shape[1] != y_pred.shape[1]:
        raise ValueError("y_true and y_pred have different number of output "
                         f"({y_true.shape[1]}!={y_pred.shape[1]})")
    outputs = y_true.shape[1]
    if not isinstance(multioutput, str) and check_multioutput:
        multioutput = _check_array(multioutput, None, numeric=True)
        if outputs == 1:
            raise ValueError("Custom weights are useful only in multi-output cases.")
        if outputs != multioutput.shape[0]:
            raise ValueError(f"There must be equally many custom weights ({multioutput.shape[0]}) "
                             f"as outputs ({outputs}).")
        if multioutput.ndim != 1:
            raise TypeError("Axis must be specified when shapes of a and weights differ.")
    return y_true, y_pred, multioutput


def _check_targets(function: str, y_true, y_pred, sample_weight, multioutput,
                   check_multioutput: bool = True):
    """scikit-learn's _check_reg_targets_with_floating_dtype: (y_true, y_pred) of shape
    (n_samples, n_outputs) in one floating dtype, the weights in it or None, and multioutput
    (a string or an array of n_outputs weights).  ``check_multioutput=False``: an array-like
    multioutput goes to ``numpy.average`` as given (scikit-learn's root_mean_squared_error
    checks the targets through mean_squared_error(..., multioutput="raw_values"))."""
    _check_parameters(function, y_true, y_pred, sample_weight, multioutput)
    _check_consistent_length(y_true, y_pred, sample_weight)
    dtype = _floating_dtype(y_true, y_pred, sample_weight)
    y_true, y_pred = _check_array(y_true, dtype), _check_array(y_pred, dtype)
    if sample_weight is not None:
        # (scikit-learn's _check_sample_weight: float32 or float64 weights, else float64; the
        # per-output errors then have the targets' and the weights' common dtype)
        weight_dtype = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)
        sample_weight = _check_array(sample_weight, weight_dtype, "sample_weight")
        if sample_weight.ndim != 1:
            raise ValueError(
                f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D array. "
                f"Expected either a scalar value or a 1D array of length {y_true.shape[0]}.")
        if sample_weight.shape != (y_true.shape[0],):
            raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected "
                             f"{(y_true.shape[0],)}!")
        if not sample_weight.any():
            raise ValueError("Sample weights must contain at least one non-zero number.")
    y_true, y_pred, multioutput = _check_outputs(y_true, y_pred, multioutput, check_multioutput)
    return y_true, y_pred, sample_weight, multioutput


# ---- the computation -------------------------------------------------------------------------

def _kernel_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the kernels read: float32 for float16 (their half-precision results are
    float32 anyway), float64 for long double; float32 and float64 as they are."""
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _check_all_finite(checked) -> None:
    """scikit-learn's finiteness checks of (y_true, y_pred, sample_weight), in its order."""
    y_true, y_pred, sample_weight = checked
    _check_finite(y_true)
    _check_finite(y_pred)
    _check_finite(sample_weight, "sample_weight")


def _loss(kind: str, y_true, y_pred, sample_weight, axis, checked):
    """fastl2's mse, mae or rmse of the checked inputs (in the dtype the kernels read), pooled
    (axis=None) or per output (axis=0); ZeroDivisionError where the weights sum to zero."""
    import fastl2

    function = {"squared": fastl2.mse, "absolute": fastl2.mae, "root": fastl2.rmse}[kind]
    kernel = _kernel_dtype(y_true.dtype)
    y_true, y_pred = y_true.astype(kernel, copy=False), y_pred.astype(kernel, copy=False)
    if sample_weight is None:
        return function(y_true, y_pred, axis=axis)
    try:  # (the weights as checked: float32 or float64)
        return function(y_true, y_pred, sample_weight, axis=axis, reduction="weighted_mean")
    except ValueError:
        _check_all_finite(checked)
        if math.fsum(sample_weight.tolist()) == 0:  # (exact: a non-zero sum does not round to 0)
            raise ZeroDivisionError("Weights sum to zero, can't be normalized") from None
        raise


def _metric(kind: str, checked, y_true, y_pred, sample_weight, multioutput, loss=_loss,
            check_all_finite=_check_all_finite):
    """The metric of checked inputs: per-output errors (of the inputs' dtype) combined as
    ``multioutput`` says.  ``checked``: the (y_true, y_pred, sample_weight) whose finiteness
    scikit-learn requires, checked where the errors are not all finite (by
    ``check_all_finite``); ``loss`` computes the errors (fastl2.dask passes its own two, for
    Dask arrays)."""
    dtype = y_true.dtype if sample_weight is None else np.result_type(y_true.dtype, sample_weight.dtype)
    outputs = y_true.shape[1]
    if kind != "root" and isinstance(multioutput, str) and (
            multioutput == "uniform_average" or outputs == 1):
        # The mean over outputs of the per-output means is the pooled mean (every output has
        # the same samples and weights): one exact call.
        errors = loss(kind, y_true[:, 0] if outputs == 1 else y_true,
                      y_pred[:, 0] if outputs == 1 else y_pred, sample_weight, None, checked)
    elif outputs == 1:
        errors = loss(kind, y_true[:, 0], y_pred[:, 0], sample_weight, None, checked)
    else:
        errors = loss(kind, y_true, y_pred, sample_weight, 0, checked)
    errors = np.asarray(errors).astype(dtype, copy=False).reshape(-1)
    if not np.isfinite(errors).all():
        check_all_finite(checked)
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return errors
        return float(errors[0] if kind != "root" or outputs == 1 else np.average(errors))
    return float(np.average(errors, weights=multioutput))


def _log1p_targets(function: str, name: str, y_true, y_pred, sample_weight, multioutput):
    y_true, y_pred, sample_weight, multioutput = _check_targets(
        function, y_true, y_pred, sample_weight, multioutput)
    checked = (y_true, y_pred, sample_weight)
    if (y_true <= -1).any() or (y_pred <= -1).any():
        _check_all_finite(checked)
        raise ValueError(f"{name} cannot be used when targets contain values less than or equal "
                         "to -1.")
    return checked, np.log1p(y_true), np.log1p(y_pred), sample_weight, multioutput


# ---- the metrics --------------------------------------------------------------------------

_PARAMETERS = """
    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Ground truth (correct) target values.
    y_pred : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Estimated target values.
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights (any sign; their sum must not be zero).
    multioutput : {'raw_values', 'uniform_average'} or array-like of shape (n_outputs,), \
default='uniform_average'
        How the per-output errors are combined: returned as they are, averaged, or averaged
        with these weights.

    Returns
    -------
    loss : float or ndarray of shape (n_outputs,)
        A Python float, or the per-output errors (an array of the inputs' floating dtype) for
        ``multioutput='raw_values'``.

    Raises
    ------
    ValueError
        Non-finite, complex, empty or 3-D input; lengths or output counts that differ; bad
        weights.  InvalidParameterError (a ValueError and a TypeError) for an argument of a
        type or value not accepted; TypeError for a scalar target; ZeroDivisionError where
        the sample weights sum to exactly zero.
"""


def mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Mean squared error, ``Σ w_i (y_true_i - y_pred_i)² / Σ w_i`` per output, correctly
    rounded: scikit-learn's ``sklearn.metrics.mean_squared_error``.

    >>> from fastl2.metrics import mean_squared_error
    >>> mean_squared_error([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
    0.375
    >>> y_true, y_pred = [[0.5, 1], [-1, 1], [7, -6]], [[0, 2], [-1, 2], [8, -5]]
    >>> mean_squared_error(y_true, y_pred, multioutput="raw_values")
    array([0.41666667, 1.        ])
    >>> mean_squared_error(y_true, y_pred, multioutput=[0.3, 0.7])
    0.825
    """
    args = _check_targets("mean_squared_error", y_true, y_pred, sample_weight, multioutput)
    return _metric("squared", args[:3], *args)


def root_mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Root mean squared error, the square root of each output's mean squared error (each
    correctly rounded), then averaged over outputs: scikit-learn's
    ``sklearn.metrics.root_mean_squared_error``.

    >>> from fastl2.metrics import root_mean_squared_error
    >>> root_mean_squared_error([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
    0.6123724356957945
    """
    args = _check_targets("root_mean_squared_error", y_true, y_pred, sample_weight, multioutput,
                          check_multioutput=False)
    return _metric("root", args[:3], *args)


def mean_absolute_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Mean absolute error, ``Σ w_i |y_true_i - y_pred_i| / Σ w_i`` per output, correctly
    rounded: scikit-learn's ``sklearn.metrics.mean_absolute_error``.

    >>> from fastl2.metrics import mean_absolute_error
    >>> mean_absolute_error([[0.5, 1], [-1, 1], [7, -6]], [[0, 2], [-1, 2], [8, -5]], multioutput="raw_values")
    array([0.5, 1. ])
    """
    args = _check_targets("mean_absolute_error", y_true, y_pred, sample_weight, multioutput)
    return _metric("absolute", args[:3], *args)


def mean_squared_log_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Mean squared logarithmic error, the mean squared error of ``numpy.log1p`` of the targets
    (ValueError where a target is <= -1): scikit-learn's
    ``sklearn.metrics.mean_squared_log_error``.

    >>> from fastl2.metrics import mean_squared_log_error
    >>> mean_squared_log_error([3, 5, 2.5, 7], [2.5, 5, 4, 8])
    0.03973012298459379
    """
    return _metric("squared", *_log1p_targets(
        "mean_squared_log_error", "Mean Squared Logarithmic Error",
        y_true, y_pred, sample_weight, multioutput))


def root_mean_squared_log_error(y_true, y_pred, *, sample_weight=None,
                                multioutput="uniform_average"):
    """Root mean squared logarithmic error, the root mean squared error of ``numpy.log1p`` of
    the targets (ValueError where a target is <= -1): scikit-learn's
    ``sklearn.metrics.root_mean_squared_log_error``.

    >>> from fastl2.metrics import root_mean_squared_log_error
    >>> root_mean_squared_log_error([3, 5, 2.5, 7], [2.5, 5, 4, 8])
    0.19932416558107996
    """
    return _metric("root", *_log1p_targets(
        "root_mean_squared_log_error", "Root Mean Squared Logarithmic Error",
        y_true, y_pred, sample_weight, multioutput))


for _function in (mean_squared_error, root_mean_squared_error, mean_absolute_error,
                  mean_squared_log_error, root_mean_squared_log_error):
    _function.__doc__ += _PARAMETERS
del _function
