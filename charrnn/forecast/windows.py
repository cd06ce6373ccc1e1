"""What a forecaster sees: the series split in time (train, validation, test = the last part), the
transformation and scale fitted on the training part alone, and the windows cut at forecast
origins. A window is anchored at its origin's value, so the model reads and predicts changes from
the last known value, in units of the training part's typical one-step change."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import CharrnnError, UsageError

TRANSFORMS = ("auto", "log", "none")
# What a series too short to split can do: a new run can split it differently; a trained model
# splits any series as its run split its own, so only a longer series will do.
SHORTER_PARTS = "give a longer series or smaller --window, --horizon, --val-size or --test-size"
LONGER_SERIES = "give a longer series (a trained model splits it as its run split its own)"


@dataclass
class Split:
    """Where the validation and test parts start: train = values[:val_start], validation =
    values[val_start:test_start], test = values[test_start:]."""

    val_start: int
    test_start: int
    length: int

    @classmethod
    def of(cls, length: int, *, horizon: int, window: int, val_size: int | None, test_size: int | None,
           label: str = "the series", remedy: str = SHORTER_PARTS) -> Split:
        """The last test_size values for the test, the val_size before them for validation [default
        for each: 10% of the series, at least two horizons]; the rest trains, and must hold at
        least a window and a horizon twice over."""
        default = max(2 * horizon, round(0.1 * length))
        test_size = default if test_size is None else test_size
        val_size = default if val_size is None else val_size
        for size, option in ((test_size, "--test-size"), (val_size, "--val-size")):
            if size < horizon:
                raise UsageError(f"{option} must hold at least one horizon ({horizon} values), not {size}")
        train = length - test_size - val_size
        need = window + horizon + 1
        if train < need:
            raise CharrnnError(f"{label} has {length} values: too short for a test part of {test_size}, a validation "
                               f"part of {val_size} and a training part of at least {need} (a window of {window} and "
                               f"a horizon of {horizon}); {remedy}")
        return cls(train, train + val_size, length)


@dataclass
class Scaler:
    """The transformation (log or none) and the scale of the model's units (the mean absolute
    one-step change of the transformed training part), fitted on the training part only."""

    transform: str  # "log" or "none"
    scale: float

    @classmethod
    def from_checkpoint(cls, checkpoint) -> Scaler:
        """The scaler a forecaster's run fitted, as its checkpoint keeps it."""
        return cls(**checkpoint.metadata["scaler"])

    @classmethod
    def fit(cls, train_values: np.ndarray, transform: str = "auto") -> Scaler:
        if transform not in TRANSFORMS:
            raise UsageError(f"unknown --transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")
        positive = bool(np.all(train_values > 0))
        if transform == "auto":
            # Sizes that grow by percentages (sales, passengers, prices) are additive after a log.
            transform = "log" if positive else "none"
        elif transform == "log" and not positive:
            raise UsageError("--transform log needs values above 0; this series has 0 or less in its training part")
        z = np.log(train_values) if transform == "log" else train_values
        steps = np.abs(np.diff(z))
        scale = float(np.mean(steps)) if len(steps) else 0.0
        return cls(transform, scale if scale > 0 and math.isfinite(scale) else 1.0)

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Values to the transformed scale (where windows are anchored)."""
        if self.transform == "log":
            if np.any(values <= 0):
                raise CharrnnError("this model forecasts the log of the series, which needs values above 0; "
                                   "the series has 0 or less")
            return np.log(values)
        return np.asarray(values, dtype=float)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        if self.transform != "log":
            return z
        with np.errstate(over="ignore"):  # a forecast beyond float64 (a model gone wild) is inf, said by its callers
            return np.exp(z)

    def to_dict(self) -> dict:
        return {"transform": self.transform, "scale": self.scale}


def windows_at(z: np.ndarray, origins: np.ndarray, window: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The model's inputs at each origin (the index of the last known value): the window of values
    ending there, as changes from it in units of scale, (O, window); and the anchors z[origin] (O,).
    Only values at or before each origin are read."""
    offsets = np.arange(-window + 1, 1)
    anchors = z[origins]
    inputs = (z[origins[:, None] + offsets] - anchors[:, None]) / scale
    return inputs.astype(np.float32), anchors


def targets_at(z: np.ndarray, origins: np.ndarray, horizon: int, scale: float) -> np.ndarray:
    """What the model learns to predict at each origin: the next horizon values as changes from
    the origin's, in units of scale, (O, horizon)."""
    steps = np.arange(1, horizon + 1)
    return ((z[origins[:, None] + steps] - z[origins][:, None]) / scale).astype(np.float32)


def origins_between(first_target: int, end: int, *, window: int, horizon: int) -> np.ndarray:
    """The origins whose whole horizon lies in values[first_target:end] and whose window lies in
    the series: from first_target - 1 (or the first full window) to end - horizon - 1."""
    return np.arange(max(first_target - 1, window - 1), end - horizon)
