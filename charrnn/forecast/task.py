"""The forecasting task: a series becomes windows at forecast origins, split in time; training
minimises the quantile loss over the training windows; evaluation scores the validation windows
(quantile loss, MASE, interval coverage); forecasting runs a trained model at any origins of any
series, in the series' own units."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint, load_checkpoint, rebuilding_from, restore_for_inference
from ..corpora import data_notes, locate_data_file, recorded_data_file
from ..data import BucketedBatches
from ..distributed import Ranks
from ..devices import resolve_device
from ..errors import CharrnnError, UsageError
from ..runs import PreparedRun, RunPlace, train_task
from ..train import TrainConfig, TrainResult
from .metrics import mase, mase_scale
from .model import Forecaster, ForecasterConfig, quantile_loss, wavenet_layers_for
from .series import FILL_METHODS, Series, future_dates, read_series, season_length
from .windows import LONGER_SERIES, SHORTER_PARTS, TRANSFORMS, Scaler, Split, origins_between, targets_at, windows_at

TASK = "forecaster"
# Training settings a caller leaves unset, chosen on the validation parts of airline-passengers and
# btc-usd-daily (README, "Forecasting").
TRAIN_DEFAULTS = dict(learning_rate=3e-3, min_lr_ratio=0.1, warmup_steps=20, eval_every=20, weight_decay=0.0)
EVAL_BATCH = 1024
INTERVAL_COVERAGE = 0.8  # the interval between the 10% and 90% quantiles


@dataclass
class ForecastDataConfig:
    column: str | None = None  # the value column (None: the only numeric one)
    date_column: str | None = None  # None: found by its name or contents
    fill: str | None = None  # missing values: None (an error), "previous" or "linear"
    transform: str = "auto"  # "log" for positive series, else "none"
    val_size: int | None = None  # None: 10% of the series, at least two horizons
    test_size: int | None = None
    batch_size: int = 32

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> ForecastDataConfig:
        return cls(**checkpoint.metadata["data_config"])

    def validate(self) -> None:
        if self.fill is not None and self.fill not in FILL_METHODS:
            raise UsageError(f"unknown --fill {self.fill!r}; choose one of {', '.join(FILL_METHODS)}")
        if self.transform not in TRANSFORMS:
            raise UsageError(f"unknown --transform {self.transform!r}; choose one of {', '.join(TRANSFORMS)}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, not {self.batch_size}")
        for size, option in ((self.val_size, "--val-size"), (self.test_size, "--test-size")):
            if size is not None and size < 1:
                raise UsageError(f"{option} must be at least 1, not {size}")


def load_series(path: str, data: ForecastDataConfig) -> Series:
    """The series a command names: a CSV file (a path, or a corpus's file name), or '-' for one
    number a line (or a CSV) on stdin."""
    if path == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("pipe the series into stdin (one number a line, or a CSV), or give its file")
        try:
            text = sys.stdin.buffer.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CharrnnError(f"the series on stdin is not utf-8 text ({exc.reason})") from None
        return read_series("", column=data.column, date_column=data.date_column, fill=data.fill, text=text)
    return read_series(locate_data_file(path, "series"), column=data.column, date_column=data.date_column, fill=data.fill)


@dataclass
class PreparedSeries:
    """A series with its split and the scaler fitted on its training part, and its values on the
    scaler's scale (z)."""

    series: Series
    split: Split
    scaler: Scaler
    z: np.ndarray

    @classmethod
    def of(cls, series: Series, data: ForecastDataConfig, *, window: int, horizon: int,
           scaler: Scaler | None = None, label: str = "the series", remedy: str = SHORTER_PARTS) -> PreparedSeries:
        split = Split.of(len(series), horizon=horizon, window=window, val_size=data.val_size,
                         test_size=data.test_size, label=label, remedy=remedy)
        scaler = scaler or Scaler.fit(series.values[: split.val_start], data.transform)
        return cls(series, split, scaler, scaler.forward(series.values))

    def origins(self, part: str, *, window: int, horizon: int) -> np.ndarray:
        """The forecast origins whose horizon lies in the part: "train", "validation" or "test"."""
        bounds = {"train": (0, self.split.val_start), "validation": (self.split.val_start, self.split.test_start),
                  "test": (self.split.test_start, self.split.length)}[part]
        return origins_between(*bounds, window=window, horizon=horizon)

    def mase_scale(self, *, log: bool = False) -> float:
        """MASE's denominator: the in-sample seasonal naive error of the training part (of its log
        values with log); NaN for a constant training part, which nothing can be scaled by."""
        train = self.series.values[: self.split.val_start]
        try:
            return mase_scale(np.log(train) if log else train, season_length(self.series))
        except ValueError:
            return math.nan


# -- training ----------------------------------------------------------------------------------


class ForecastTask:
    """Quantile-loss training over shuffled windows of the training part; evaluation on the
    validation windows reports the quantile loss, MASE of the median and the 80% interval's
    coverage."""

    name = TASK

    @staticmethod
    def describe_metrics(metrics: dict) -> str:
        text = f"quantile loss {metrics['val_loss']:.4f}"
        if "val_mase" in metrics:
            text += f", MASE {metrics['val_mase']:.3f}"
        if "val_coverage" in metrics:
            text += f", 80% interval coverage {100 * metrics['val_coverage']:.0f}%"
        return text

    def __init__(self, model: Forecaster, prepared: PreparedSeries, data: ForecastDataConfig, *, seed: int,
                 data_path: str):
        self.model = model
        self.prepared = prepared
        self.data = data
        self.data_path = data_path
        config = model.config
        origins = prepared.origins("train", window=config.window, horizon=config.horizon)
        self.inputs, _ = windows_at(prepared.z, origins, config.window, prepared.scaler.scale)
        self.targets = targets_at(prepared.z, origins, config.horizon, prepared.scaler.scale)
        self.val_origins = prepared.origins("validation", window=config.window, horizon=config.horizon)
        # The validation windows, cut once: calibrate and evaluate both read them at every evaluation.
        self.val_inputs, _ = windows_at(prepared.z, self.val_origins, config.window, prepared.scaler.scale)
        self.val_targets = torch.from_numpy(targets_at(prepared.z, self.val_origins, config.horizon, prepared.scaler.scale))
        ranks = Ranks.current()
        batch_size = min(data.batch_size, len(origins))
        if ranks.parallel and batch_size < data.batch_size:
            # A series with fewer windows than a batch: the batch all of them (as on one process),
            # less the few that would not divide among the ranks.
            batch_size = max(ranks.world_size, batch_size - batch_size % ranks.world_size)
        self.batches = BucketedBatches([1] * len(origins), batch_size, seed=seed, ranks=ranks)
        self.steps_per_epoch = self.batches.batches_per_epoch

    def training_loss(self, model, device):
        batch = self.batches.next()
        x = torch.from_numpy(self.inputs[batch]).to(device)
        y = torch.from_numpy(self.targets[batch]).to(device)
        return quantile_loss(model(x), y, model.config.quantiles), y.numel()

    def calibrate(self, model, device) -> None:
        """Fit the interval's width on the validation windows (the Trainer calls it before each
        evaluation), so that 80% of their values fall inside."""
        model.calibrate_interval(torch.from_numpy(predict_windows(model, self.val_inputs, raw=True)), self.val_targets,
                                 INTERVAL_COVERAGE)

    def evaluate(self, model, device, max_tokens: int | None = None) -> dict[str, float]:
        # The validation windows are few: all of them, whatever max_tokens says.
        config = model.config
        raw = torch.from_numpy(predict_windows(model, self.val_inputs, raw=True))
        loss = float(quantile_loss(raw, self.val_targets, config.quantiles))  # what training minimises
        forecasts = QuantileForecasts.of(model.calibrated(raw).numpy(), self.prepared, self.val_origins, config)
        actual = actual_at(self.prepared.series.values, self.val_origins, config.horizon)
        metrics = {"val_loss": loss, "val_coverage": forecasts.coverage(actual)}
        scale = self.prepared.mase_scale()
        if math.isfinite(scale):  # (a constant training part has no MASE)
            metrics["val_mase"] = mase(actual, forecasts.median, scale)
        return metrics

    def data_state(self) -> dict:
        return self.batches.state()

    def load_data_state(self, state: dict) -> None:
        self.batches.load_state(state)

    def checkpoint_fields(self) -> dict:
        series = self.prepared.series
        return {
            "task": TASK,
            "model_config": asdict(self.model.config),
            "data_config": asdict(self.data),
            "scaler": self.prepared.scaler.to_dict(),
            "series": {"name": series.name, "frequency": series.frequency, "season": season_length(series),
                       "length": len(series), "val_start": self.prepared.split.val_start,
                       "test_start": self.prepared.split.test_start},
            # The series' last window (values and dates): what `forecast predict` needs to forecast
            # what comes after the series without it, as a checkpoint carries its vocabulary.
            "recent": {"values": [float(v) for v in series.values[-self.model.config.window:]],
                       "dates": [d.isoformat() for d in series.dates[-self.model.config.window:]] if series.dates else None},
            "corpus": Path(self.data_path).name,
            "corpus_path": self.data_path,
            "notes": data_notes(Path(self.data_path)) if self.data_path != "stdin" else {},
        }


def _label(path: str) -> str:
    """A series' name in messages: "series sales.csv", or "series stdin" for -."""
    return f"series {'stdin' if path == '-' else path}"


def train_forecaster(data_file: str | None, *, horizon: int | None = None, window: int | None = None,
                     model_config: dict | None = None, data: ForecastDataConfig | None = None, **run) -> TrainResult:
    """Train a forecaster of the next horizon values of a series file; or resume a run. window:
    the past values each forecast reads [default: chosen from the horizon and the season]. run:
    the options of runs.train_task (train, run_dir, resume, device, precision, overwrite,
    on_event)."""
    recipe = ForecasterRecipe(data_file, horizon, window, model_config or {}, data or ForecastDataConfig())
    return train_task(recipe, **run)


def default_window(horizon: int, season: int) -> int:
    """Three seasons, or two horizons when that is more (at least 8 values): on airline-passengers'
    validation part, three years of months forecast a fifth better than two (README, "Forecasting")."""
    return max(3 * season, 2 * horizon, 8)


@dataclass
class ForecasterRecipe:
    """How runs.train_task builds a forecasting run (see train_forecaster)."""

    data_file: str | None
    horizon: int | None
    window: int | None
    model_config: dict
    data: ForecastDataConfig
    name: str = TASK

    def check(self) -> None:
        if self.data_file is None:
            raise UsageError("give the series to train on: a CSV file, or - for one number a line on stdin")
        if self.horizon is None:
            raise UsageError("give the number of values to forecast with --horizon")
        ForecasterConfig.check_options({**self.model_config, "horizon": self.horizon,
                                        "window": self.window if self.window is not None else 2})

    def new_run(self, train: TrainConfig, place: RunPlace) -> PreparedRun:
        series = load_series(self.data_file, self.data)
        window = self.window or default_window(self.horizon, season_length(series))
        options = dict(self.model_config)
        if options.get("num_layers") is None:
            options["num_layers"] = wavenet_layers_for(window) if options.get("model") == "wavenet" else 2
        config = ForecasterConfig(window=window, horizon=self.horizon, **options)
        prepared = PreparedSeries.of(series, self.data, window=window, horizon=self.horizon, label=_label(self.data_file))
        place.preparing(f"{len(series):,} values: {prepared.split.val_start:,} to train on, "
                        f"{prepared.split.test_start - prepared.split.val_start:,} to validate, "
                        f"{len(series) - prepared.split.test_start:,} held out to test")
        return self._prepared(Forecaster(config), prepared, train.with_defaults(**TRAIN_DEFAULTS))

    def resumed_run(self, checkpoint: Checkpoint, train: TrainConfig, place: RunPlace) -> PreparedRun:
        data = ForecastDataConfig.from_checkpoint(checkpoint)
        path = self.data_file or recorded_data_file(checkpoint.metadata["corpus_path"])
        config = ForecasterConfig(**checkpoint.metadata["model_config"])
        prepared = PreparedSeries.of(load_series(path, data), data, window=config.window, horizon=config.horizon,
                                     scaler=Scaler.from_checkpoint(checkpoint), label=_label(path),
                                     remedy=LONGER_SERIES)
        self.data = data
        self.data_file = path
        return self._prepared(Forecaster(config), prepared, train)

    def _prepared(self, model: Forecaster, prepared: PreparedSeries, train: TrainConfig) -> PreparedRun:
        path = "stdin" if self.data_file == "-" else str(locate_data_file(self.data_file, "series").resolve())
        task = ForecastTask(model, prepared, self.data, seed=train.seed, data_path=path)
        return PreparedRun(task, train)


# -- forecasting -------------------------------------------------------------------------------


@torch.inference_mode()
def predict_windows(model: Forecaster, x: np.ndarray, *, raw: bool = False) -> np.ndarray:
    """The model's quantiles (O, horizon, Q) for windows (O, window), in batches: sorted, so that
    no quantile crosses another, and calibrated (see Forecaster.calibrated) unless raw."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), EVAL_BATCH):
        quantiles = model(torch.from_numpy(x[i : i + EVAL_BATCH]).to(device)).float()
        out.append((quantiles if raw else model.calibrated(quantiles)).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


@dataclass
class QuantileForecasts:
    """Forecasts at origins in the series' units: the median and the 80% interval, (O, horizon)."""

    median: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    @classmethod
    def of(cls, predicted: np.ndarray, prepared: PreparedSeries, origins: np.ndarray,
           config: ForecasterConfig) -> QuantileForecasts:
        """The model's output (in window units) back in the series' units: quantiles survive the
        monotone inverse transform, so the interval stays an 80% interval."""
        anchors = prepared.z[origins][:, None, None]
        # In float64: the model's float32 times the scale of a series of large values (1e40 and
        # more) overflows float32.
        values = prepared.scaler.inverse(anchors + predicted.astype(np.float64) * prepared.scaler.scale)
        q = config.quantiles
        return cls(values[..., q.index(0.5)], values[..., q.index(0.1)], values[..., q.index(0.9)])

    def coverage(self, actual: np.ndarray) -> float:
        """The share of actual values inside the 80% interval."""
        return float(np.mean((actual >= self.lower) & (actual <= self.upper)))


def actual_at(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The values that followed each origin, (O, horizon)."""
    return values[origins[:, None] + np.arange(1, horizon + 1)]


def forecast_at(model: Forecaster, prepared: PreparedSeries, origins: np.ndarray) -> QuantileForecasts:
    """The model's forecasts made at each origin, from the window that ends there."""
    config = model.config
    x, _ = windows_at(prepared.z, origins, config.window, prepared.scaler.scale)
    return QuantileForecasts.of(predict_windows(model, x), prepared, origins, config)


def load_forecaster(checkpoint: str | Path, device: str = "auto") -> tuple[Forecaster, Checkpoint]:
    target = resolve_device(device)  # outside rebuilding_from: a bad --device is the user's, not the file's
    saved = load_checkpoint(checkpoint, task=TASK)
    with rebuilding_from(saved.path):
        ForecastDataConfig.from_checkpoint(saved).validate()
        Scaler.from_checkpoint(saved)
        model = restore_for_inference(Forecaster(ForecasterConfig(**saved.metadata["model_config"])), saved, target)
    return model, saved


def series_of(checkpoint: Checkpoint, path: str | None, *, column: str | None = None,
              date_column: str | None = None, fill: str | None = None, recent: bool = False) -> tuple[Series, str]:
    """The series a trained model is used on: the file given (read with the training run's column
    settings unless others are given), else the run's own series: with recent, the last window of
    it that the checkpoint carries (enough to forecast what follows), else the whole file. Returns
    it with its label."""
    data = ForecastDataConfig.from_checkpoint(checkpoint)
    if path is None and recent and checkpoint.metadata.get("recent"):
        return recent_series(checkpoint), f"the end of {checkpoint.metadata.get('corpus', 'its series')}"
    if path is None:
        if checkpoint.metadata.get("corpus_path") in (None, "stdin"):
            raise UsageError("this checkpoint was trained on stdin; give the series to forecast")
        with rebuilding_from(checkpoint.path):
            path = recorded_data_file(checkpoint.metadata["corpus_path"])
    reading = ForecastDataConfig(column=column or data.column, date_column=date_column or data.date_column,
                                 fill=fill or data.fill)
    reading.validate()
    return load_series(path, reading), ("stdin" if path == "-" else path)


def recent_series(checkpoint: Checkpoint) -> Series:
    """The last window of the series a model trained on, as its checkpoint carries it."""
    with rebuilding_from(checkpoint.path):
        recent = checkpoint.metadata["recent"]
        saved = checkpoint.metadata["series"]
        dates = [datetime.fromisoformat(d) for d in recent["dates"]] if recent["dates"] else None
        return Series(np.array(recent["values"], dtype=float), dates, saved["frequency"] if dates else None,
                      saved["name"])


def prepare_for(model: Forecaster, checkpoint: Checkpoint, series: Series, label: str) -> PreparedSeries:
    """The series split and scaled as the model's run split and scaled its own (the test part as
    long, the scale fitted on its training part, not refitted)."""
    data = ForecastDataConfig.from_checkpoint(checkpoint)
    with rebuilding_from(checkpoint.path):
        scaler = Scaler.from_checkpoint(checkpoint)
        saved = checkpoint.metadata["series"]
        data.val_size = saved["test_start"] - saved["val_start"]
        data.test_size = saved["length"] - saved["test_start"]
    return PreparedSeries.of(series, data, window=model.config.window, horizon=model.config.horizon, scaler=scaler,
                             label=f"series {label}", remedy=LONGER_SERIES)


@dataclass
class Forecast:
    """The next values after a series ends: their dates (None for a series without dates), the
    median forecast and the 80% interval."""

    dates: list | None
    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def forecast_next(model: Forecaster, checkpoint: Checkpoint, series: Series, horizon: int | None = None) -> Forecast:
    """Forecast the values after the series' last one (the first horizon of the model's, all of
    them by default) from its last window."""
    config = model.config
    horizon = config.horizon if horizon is None else horizon
    if not 1 <= horizon <= config.horizon:
        raise UsageError(f"--horizon must be between 1 and {config.horizon} (the horizon this model was trained for), not {horizon}")
    if len(series) < config.window:
        raise CharrnnError(f"the series has {len(series)} values; this model reads the last {config.window}")
    with rebuilding_from(checkpoint.path):
        scaler = Scaler.from_checkpoint(checkpoint)
    z = scaler.forward(series.values)
    prepared = PreparedSeries(series, Split(len(series), len(series), len(series)), scaler, z)
    forecasts = forecast_at(model, prepared, np.array([len(series) - 1]))
    if not (np.all(np.isfinite(forecasts.lower)) and np.all(np.isfinite(forecasts.upper))):
        raise CharrnnError("the model forecasts NaN or values beyond ±1e308 from this series: its training "
                           "diverged, or its checkpoint is damaged")
    return Forecast(future_dates(series, horizon), forecasts.median[0, :horizon], forecasts.lower[0, :horizon],
                    forecasts.upper[0, :horizon])
