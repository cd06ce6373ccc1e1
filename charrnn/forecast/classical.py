"""The classical model in every table: exponential smoothing (Holt-Winters with a damped additive
trend, and additive seasonality where the series has a season), from statsmodels, the well-kept
reference implementation, on the same transformed scale (log or none) as the network. statsmodels
is an optional extra (pip install 'charrnn[forecast]'): without it, tables leave this row out and
say why."""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import CharrnnError

NAME = "exponential smoothing"
MAX_FITS = 50  # parameter fits per evaluation; the origins between fits reuse the latest parameters
MISSING = "statsmodels is not installed (pip install 'charrnn[forecast]')"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("statsmodels") is not None


def smoothing_forecasts(values: np.ndarray, origins: np.ndarray, horizon: int, *, season: int,
                        log: bool) -> np.ndarray:
    """Holt-Winters forecasts (O, horizon) made at each origin from values[:origin + 1] alone. Its
    parameters are refitted at up to MAX_FITS evenly spaced origins (all of them when there are
    that few, as for a monthly series' test years) and reused, unrefitted, at the origins between:
    statsforecast's cross-validation offers the same trade (its refit option) for long test parts."""
    try:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    except ImportError:
        raise CharrnnError(MISSING) from None
    z = np.log(values) if log else np.asarray(values, dtype=float)
    refit_every = max(1, math.ceil(len(origins) / MAX_FITS))
    forecasts = np.empty((len(origins), horizon))
    params = None
    for i, origin in enumerate(origins):
        history = z[: origin + 1]
        seasonal = season > 1 and len(history) >= 2 * season
        model = ExponentialSmoothing(history, trend="add", damped_trend=True, seasonal="add" if seasonal else None,
                                     seasonal_periods=season if seasonal else None, initialization_method="estimated")
        with warnings.catch_warnings():
            # statsmodels warns when its optimiser stops short of convergence; the fit is still used,
            # as any user of the library would use it. (Its forecast too: a series it fits exactly
            # has an error sum of 0, whose log it takes.)
            warnings.simplefilter("ignore")
            if params is None or i % refit_every == 0:
                fitted = model.fit()
                params = {name: fitted.params[name] for name in
                          ("smoothing_level", "smoothing_trend", "smoothing_seasonal", "damping_trend")
                          if fitted.params.get(name) is not None and not np.isnan(fitted.params[name])}
            else:
                fitted = model.fit(**params, optimized=False)
            forecasts[i] = fitted.forecast(horizon)
    return np.exp(forecasts) if log else forecasts
