"""What a series is made of, before any model: its trend, seasonality and irregular part (STL
decomposition, statsmodels), how strong the first two are (Wang, Smith and Hyndman's measures), and
the autocorrelation of its changes, which shows a season as peaks at its multiples and a random
walk as nothing at all."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CharrnnError
from . import classical
from .series import Series, season_length


@dataclass
class SeriesSummary:
    name: str
    length: int
    frequency: str | None
    start: str | None
    end: str | None
    season: int
    log: bool  # decomposed on log values (a series above 0, whose swings grow with its level)
    trend: np.ndarray
    seasonal: np.ndarray | None  # None: no season to fit (period 1, or fewer than two seasons)
    residual: np.ndarray
    trend_strength: float  # 0 (none) to 1
    seasonal_strength: float | None
    autocorrelation: np.ndarray  # of the changes, at lags 0..lags

    def as_dict(self) -> dict:
        acf = self.autocorrelation
        return {"name": self.name, "length": self.length, "frequency": self.frequency, "start": self.start,
                "end": self.end, "season": self.season, "decomposed_on": "log values" if self.log else "values",
                "trend_strength": round(self.trend_strength, 4),
                "seasonal_strength": None if self.seasonal_strength is None else round(self.seasonal_strength, 4),
                "autocorrelation_of_changes": [round(float(a), 4) if np.isfinite(a) else None for a in acf[1:]],
                "significance_bound": round(self.significance_bound, 4)}

    @property
    def significance_bound(self) -> float:
        """|autocorrelation| above this is unlikely for white noise (95%, 1.96 / sqrt(n))."""
        return 1.96 / np.sqrt(max(1, self.length - 1))

    def as_text(self) -> str:
        lines = [f"series\t{self.name}", f"values\t{self.length}"]
        if self.frequency:
            lines += [f"frequency\t{self.frequency}", f"dates\t{self.start} to {self.end}"]
        lines.append(f"season\t{self.season}")
        lines.append(f"decomposed on\t{'log values' if self.log else 'values'}")
        lines.append(f"trend strength\t{self.trend_strength:.3f}")
        strength = "-" if self.seasonal_strength is None else f"{self.seasonal_strength:.3f}"
        lines.append(f"seasonal strength\t{strength}")
        bound = self.significance_bound
        shown = sorted({1, 2, self.season, 2 * self.season} & set(range(1, len(self.autocorrelation))))
        for lag in shown:
            value = self.autocorrelation[lag]
            lines.append(f"autocorrelation of changes, lag {lag}\t{value:+.3f}" + (" (significant)" if abs(value) > bound else ""))
        return "\n".join(lines)


def describe_series(series: Series, *, season: int | None = None, lags: int = 36) -> SeriesSummary:
    """Decompose the series (STL, robust) and measure it. season: the period [default: the
    frequency's, see series.SEASON]."""
    try:
        from statsmodels.nonparametric.smoothers_lowess import lowess
        from statsmodels.tsa.seasonal import STL
        from statsmodels.tsa.stattools import acf
    except ImportError:
        raise CharrnnError(classical.MISSING) from None
    if len(series) < 4:
        raise CharrnnError(f"series {series.name} has {len(series)} values; inspecting one needs at least 4")
    season = season or season_length(series)
    values = series.values
    log = bool(np.all(values > 0))
    y = np.log(values) if log else values
    if season > 1 and len(y) >= 2 * season + 1:
        parts = STL(y, period=season, robust=True).fit()
        trend, seasonal, residual = parts.trend, parts.seasonal, parts.resid
        seasonal_strength = _strength(residual, seasonal)
    else:
        # No season to fit: the trend is a local regression (LOWESS) and the rest is irregular.
        trend = lowess(y, np.arange(len(y)), frac=min(1.0, max(0.1, 15 / len(y))), return_sorted=False)
        seasonal, residual, seasonal_strength = None, y - trend, None
    changes = np.diff(y)
    lags = min(lags, len(changes) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # constant changes: no autocorrelation (NaN)
        autocorrelation = acf(changes, nlags=lags, fft=True) if lags >= 1 else np.ones(1)
    when = (series.dates[0], series.dates[-1]) if series.dates else (None, None)
    return SeriesSummary(series.name, len(series), series.frequency, _day(when[0]), _day(when[1]), season, log,
                         trend, seasonal, residual, _strength(residual, trend), seasonal_strength, autocorrelation)


def _strength(residual: np.ndarray, component: np.ndarray) -> float:
    """1 - Var(residual) / Var(component + residual), floored at 0 (Wang, Smith and Hyndman, 2006)."""
    total = np.var(component + residual)
    return float(max(0.0, 1 - np.var(residual) / total)) if total > 0 else 0.0


def _day(when) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%d")
