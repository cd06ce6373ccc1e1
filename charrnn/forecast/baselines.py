"""The simple forecasts every table reports beside the models: naive (the last value), seasonal
naive (the value one season before), and drift (the line from the first value to the last).
Each takes the history (oldest first) and returns the next horizon values."""

from __future__ import annotations

import numpy as np


def naive(history: np.ndarray, horizon: int) -> np.ndarray:
    return np.full(horizon, history[-1], dtype=float)


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Each step repeats the value one season earlier (naive when history is shorter than a season)."""
    if season <= 1 or len(history) < season:
        return naive(history, horizon)
    last_season = history[-season:]
    return np.array([last_season[i % season] for i in range(horizon)], dtype=float)


def drift(history: np.ndarray, horizon: int) -> np.ndarray:
    """The last value plus the average change per step over the history."""
    slope = (history[-1] - history[0]) / (len(history) - 1) if len(history) > 1 else 0.0
    return history[-1] + slope * np.arange(1, horizon + 1)


BASELINES = {"naive": naive, "seasonal naive": seasonal_naive, "drift": drift}


def baseline_forecast(name: str, history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    if name == "seasonal naive":
        return seasonal_naive(history, horizon, season)
    return BASELINES[name](history, horizon)
