"""Draws as ArviZ ``InferenceData``: ``ppl.to_arviz(draws)`` (an optional extra).

``draws`` is a :class:`~ppl.mcmc.NutsResult` (its chains become ArviZ's
``chain`` dimension; ``sample_stats`` holds ``diverging`` and ``lp``, the
unconstrained log density of each draw; ``observed_data`` the target's
observations) or stacked traces from ``family.sample`` or ``predictive``
(one chain). Each address is one variable, named by its address; its
trailing axes get ArviZ's default dimension names (``theta_raw_dim_0``).

ArviZ is imported only here, when called; without it the call is a
:class:`~ppl.DataError` saying ``pip install 'ppl[arviz]'``. The
``InferenceData`` API is that of ArviZ 0.17 to 0.x (1.0 replaced it by
xarray's DataTree).

    >>> # idata = ppl.to_arviz(ppl.nuts(model | {"y": y}, key=jax.random.PRNGKey(0)))
    >>> # arviz.rhat(idata), arviz.ess(idata), arviz.plot_trace(idata)
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Mapping

import numpy as np

from .compiler.diagnostics import DataError, Diagnostic
from .mcmc import NutsResult
from .trace import Trace


def to_arviz(draws: NutsResult | Trace | Mapping[str, Any]) -> Any:
    """An ``arviz.InferenceData`` of a NUTS run or of stacked traces (one chain)."""
    az = _arviz()
    if isinstance(draws, NutsResult):
        posterior = {a: np.asarray(v) for a, v in draws.by_chain.items()}
        stats = {"diverging": np.asarray(draws.divergences, bool),
                 "lp": -np.asarray(draws.potential_energy)}
        observed = {a: np.asarray(v) for a, v in draws.target.observations.items()}
        return az.from_dict(posterior=posterior, sample_stats=stats, observed_data=observed)
    if isinstance(draws, Mapping):
        values = {a: np.asarray(v) for a, v in (draws.values_by_address if isinstance(draws, Trace)
                                                 else draws).items()}
        if not values or any(v.ndim == 0 for v in values.values()) or len(
                {v.shape[0] for v in values.values()}) != 1:
            raise DataError(Diagnostic("to_arviz needs traces stacked along a leading sample "
                                       "axis (e.g. from family.sample(key, params, n))"))
        return az.from_dict(posterior={a: v[None] for a, v in values.items()})
    raise DataError(Diagnostic(f"to_arviz takes the result of ppl.nuts or stacked traces, got "
                               f"{type(draws).__name__}"))


def _arviz():
    try:
        with warnings.catch_warnings():  # ArviZ announces its 1.0 refactor on every import
            warnings.simplefilter("ignore", FutureWarning)
            az = importlib.import_module("arviz")
    except ImportError:
        raise DataError(Diagnostic("to_arviz needs ArviZ, an optional extra",
                                   help="pip install 'ppl[arviz]'")) from None
    if not hasattr(az, "InferenceData") or not hasattr(az, "from_dict"):
        raise DataError(Diagnostic(f"to_arviz needs ArviZ's InferenceData (ArviZ 0.17 to 0.x); "
                                   f"this is ArviZ {getattr(az, '__version__', '?')}",
                                   help="pip install 'ppl[arviz]'"))
    return az


__all__ = ["to_arviz"]
