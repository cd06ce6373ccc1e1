"""Forecast accuracy as the M4 competition measures it: MAE, RMSE, sMAPE (in percent, 0 to 200)
and MASE (the error scaled by the in-sample seasonal naive forecast's), plus the share of
forecasts that move the right way (directional accuracy)."""

from __future__ import annotations

import numpy as np


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - forecast)))


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.sqrt(np.mean((actual - forecast) ** 2)))


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent; a step where both are 0 counts as no error."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(2 * np.abs(actual - forecast), denominator, out=np.zeros_like(denominator, dtype=float),
                      where=denominator > 0)
    return float(100 * np.mean(ratio))


def mase_scale(history: np.ndarray, season: int = 1) -> float:
    """The mean absolute error of the seasonal naive forecast within history (season 1: naive),
    the denominator of MASE. Raises ValueError when history is too short or constant."""
    season = season if len(history) > season else 1
    if len(history) <= season:
        raise ValueError("MASE needs a history longer than one season")
    scale = float(np.mean(np.abs(history[season:] - history[:-season])))
    if scale == 0:
        raise ValueError("MASE is undefined for a constant history")
    return scale


def mase(actual: np.ndarray, forecast: np.ndarray, scale: float) -> float:
    return mae(actual, forecast) / scale


def directional_accuracy(actual: np.ndarray, forecast: np.ndarray, last: np.ndarray) -> float:
    """The share of forecasts whose move from the last known value has the sign of the actual
    move (a move of 0 in the actual counts as right only for a forecast of no move)."""
    return float(np.mean(np.sign(forecast - last) == np.sign(actual - last)))
