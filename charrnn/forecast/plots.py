"""The forecasting figures (PNG, matplotlib through charrnn.plots): a forecast after the history
with its 80% interval; a model's forecasts from the test origins over the series; a series'
decomposition with the autocorrelation of its changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plots import pyplot, save_figure
from .series import Series

HISTORY_SHOWN = 5  # forecasts are drawn after this many horizons of history (all of a short series)


def _axis(series: Series, count: int | None = None, start: int = 0):
    """The x values of series positions start .. start + count: its dates, or step numbers."""
    count = len(series) - start if count is None else count
    if series.dates is not None:
        return series.dates[start : start + count]
    return np.arange(start, start + count)


def _finish_series_figure(figure, axes, series: Series, title: str, path: str | Path) -> None:
    """Title, axis label, legend and grid of a figure drawn over a series' dates, then save it."""
    axes.set_title(title)
    axes.set_ylabel(series.name)
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    save_figure(figure, path)


def plot_forecast(series: Series, forecast, path: str | Path) -> None:
    """The end of the history, then the forecast (median) and its 80% interval."""
    plt = pyplot()
    horizon = len(forecast.median)
    start = max(0, len(series) - HISTORY_SHOWN * max(horizon, 12))
    future = forecast.dates if forecast.dates is not None else np.arange(len(series), len(series) + horizon)
    figure, axes = plt.subplots(figsize=(9, 4))
    axes.plot(_axis(series, start=start), series.values[start:], color="black", linewidth=1.2, label="history")
    # The forecast line starts at the last known value, so the two read as one curve.
    joined_x = [_axis(series, 1, len(series) - 1)[0], *future]
    axes.plot(joined_x, [series.values[-1], *forecast.median], color="tab:blue", linewidth=1.6, label="forecast")
    axes.fill_between(future, forecast.lower, forecast.upper, color="tab:blue", alpha=0.25, label="80% interval")
    _finish_series_figure(figure, axes, series, f"{series.name}: the next {horizon} values", path)


def plot_backtest(series: Series, origins: np.ndarray, forecasts, path: str | Path) -> None:
    """The series, and the model's forecasts from test origins one horizon apart (each forecast
    only saw the values up to its origin), with their 80% intervals."""
    plt = pyplot()
    horizon = forecasts.median.shape[1]
    start = max(0, int(origins[0]) - HISTORY_SHOWN * horizon)
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.plot(_axis(series, start=start), series.values[start:], color="black", linewidth=1.2, label="actual")
    for k, i in enumerate(range(0, len(origins), horizon)):
        x = _axis(series, horizon, int(origins[i]) + 1)
        axes.plot(x, forecasts.median[i], color="tab:blue", linewidth=1.6, label="forecast" if k == 0 else None)
        axes.fill_between(x, forecasts.lower[i], forecasts.upper[i], color="tab:blue", alpha=0.2,
                          label="80% interval" if k == 0 else None)
        axes.axvline(_axis(series, 1, int(origins[i]))[0], color="grey", linewidth=0.6, linestyle=":")
    _finish_series_figure(figure, axes, series,
                          f"{series.name}: forecasts from the test origins (dotted), each from the values before it", path)


def plot_decomposition(series: Series, summary, path: str | Path) -> None:
    """Four panels of the decomposition (the series, trend, seasonality, residual) and the
    autocorrelation of the changes with its white-noise bounds."""
    plt = pyplot()
    panels = [("series" + (" (log)" if summary.log else ""), np.log(series.values) if summary.log else series.values),
              ("trend", summary.trend)]
    if summary.seasonal is not None:
        panels.append((f"seasonality (period {summary.season})", summary.seasonal))
    panels.append(("residual", summary.residual))
    figure, axes = plt.subplots(len(panels) + 1, 1, figsize=(9, 2 * (len(panels) + 1)))
    x = _axis(series)
    for ax, (title, values) in zip(axes, panels):
        ax.plot(x, values, color="black" if title.startswith("series") else "tab:blue", linewidth=1.0)
        ax.set_ylabel(title, fontsize=8)
        ax.grid(alpha=0.3)
    acf = summary.autocorrelation
    lags = np.arange(1, len(acf))
    last = axes[-1]
    last.bar(lags, acf[1:], color="tab:blue", width=0.6)
    bound = summary.significance_bound
    last.axhline(bound, color="grey", linestyle="--", linewidth=0.8)
    last.axhline(-bound, color="grey", linestyle="--", linewidth=0.8)
    last.axhline(0, color="black", linewidth=0.6)
    last.set_xlabel("lag")
    last.set_ylabel("autocorrelation\nof changes", fontsize=8)
    axes[0].set_title(f"{series.name}: trend {summary.trend_strength:.2f}"
                      + (f", seasonality {summary.seasonal_strength:.2f}" if summary.seasonal_strength is not None else "")
                      + " (strength, 0 to 1)")
    figure.tight_layout()
    save_figure(figure, path)
