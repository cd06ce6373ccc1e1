"""Rolling-origin evaluation: every forecaster (the trained model, the simple baselines, the
classical model) forecasts from each origin of the test part, seeing only the values up to it,
and is scored on what followed: MAE, RMSE, sMAPE, MASE, directional accuracy and, for a forecaster
with an interval, the share of values inside its 80% interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from . import classical
from .baselines import BASELINES, baseline_forecast
from .metrics import directional_accuracy, mae, mase, rmse, smape
from .series import season_length
from .task import Forecaster, PreparedSeries, QuantileForecasts, actual_at, forecast_at


@dataclass
class Scores:
    """One forecaster's figures over the test origins. MASE is M4's: each origin's MAE over the
    horizon, scaled by the in-sample seasonal naive error, averaged over origins (the same as the
    MAE of all forecasts over the scale, as every origin has the same horizon)."""

    model: str
    mae: float
    rmse: float
    smape: float
    mase: float
    directional_accuracy: float
    coverage: float | None  # of the 80% interval; None without one
    origins: int
    horizon: int
    note: str | None = None  # why a row has no figures (the classical model without statsmodels)

    def as_dict(self) -> dict:
        return {name: (round(value, 6) if isinstance(value, float) else value) for name, value in self.__dict__.items()}


def backtest(model: Forecaster, prepared: PreparedSeries, *, model_name: str, log_scale: bool = False,
             with_classical: bool = True) -> list[Scores]:
    """The model's and every baseline's scores over the test origins of the prepared series
    (origins from the test part's start to its last full horizon). log_scale: score the log of the
    values (the scale of returns, the one to use for prices) for MAE, RMSE and MASE; sMAPE, a
    percentage, and directional accuracy read the same either way."""
    config = model.config
    horizon = config.horizon
    values = prepared.series.values
    if log_scale and np.any(values <= 0):  # before the forecasts, the classical model's fits above all
        raise UsageError("--log-scale needs a series above 0")
    origins = prepared.origins("test", window=config.window, horizon=horizon)
    season = season_length(prepared.series)
    actual = actual_at(values, origins, horizon)
    forecasts: list[tuple[str, QuantileForecasts | None, str | None]] = [
        (model_name, forecast_at(model, prepared, origins), None)]
    for name in BASELINES:
        median = np.stack([baseline_forecast(name, values[: t + 1], horizon, season) for t in origins])
        forecasts.append((name, QuantileForecasts(median), None))
    if with_classical:
        if classical.available():
            median = classical.smoothing_forecasts(values, origins, horizon, season=season,
                                                   log=prepared.scaler.transform == "log")
            forecasts.append((classical.NAME, QuantileForecasts(median), None))
        else:
            forecasts.append((classical.NAME, None, classical.MISSING))
    on = np.log if log_scale else np.asarray
    scale = prepared.mase_scale(log=log_scale)
    last = on(values[origins])[:, None]
    rows = []
    for name, forecast, note in forecasts:
        if forecast is None:
            rows.append(Scores(name, *[float("nan")] * 5, None, len(origins), horizon, note=note))
            continue
        a, f = on(actual), on(forecast.median)
        rows.append(Scores(name, mae(a, f), rmse(a, f), smape(actual, forecast.median), mase(a, f, scale),
                           directional_accuracy(a, f, last),
                           forecast.coverage(actual) if forecast.lower is not None else None, len(origins), horizon))
    return rows
