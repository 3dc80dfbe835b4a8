"""fastl2: squared-error (L2) losses and their gradients in one pass, multithreaded and
deterministic, for NumPy arrays.

>>> import fastl2
>>> fastl2.mse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
np.float64(1.3333333333333333)
"""

__version__ = "0.1.0"

from ._backends import (
    available_backends,
    empty_cache,
    get_backend,
    get_gradient_cache_limit,
    get_num_threads,
    set_backend,
    set_gradient_cache_limit,
    set_num_threads,
)
from ._api import huber, huber_and_grad, huber_grad, mae, mae_and_grad, mae_grad, mse, mse_and_grad, mse_grad, rmse
from ._penalty import l2_penalty, l2_penalty_grad
from ._config import show_config
from ._streaming import HuberLoss, MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError, StreamingMetric


def _compiled_entry_points() -> None:
    """Exports the compiled module's versions of the functions it has a fast path for (when it
    is built): they answer the common call and call fastl2._api's function of the same name
    otherwise.  Each shows that function's documentation and signature."""
    from . import _api, _backends

    core = _backends.compiled_module()
    if core is None:
        return
    for name in core.FAST_PATH_FUNCTIONS:
        function, entry = getattr(_api, name), getattr(core, name)
        entry.__doc__ = function.__doc__
        entry.__wrapped__ = function  # inspect.signature and help() show the planned signature
        entry.__module__ = __name__
        globals()[name] = entry


_compiled_entry_points()

__all__ = [
    "mse", "mae", "rmse", "mse_grad", "mse_and_grad", "mae_grad", "mae_and_grad",
    "huber", "huber_grad", "huber_and_grad", "l2_penalty", "l2_penalty_grad",
    "get_backend", "set_backend", "available_backends", "get_num_threads", "set_num_threads",
    "empty_cache", "get_gradient_cache_limit", "set_gradient_cache_limit",
    "show_config", "__version__",
    "MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError", "HuberLoss", "StreamingMetric",
]
