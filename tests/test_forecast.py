"""Forecasting: the split and scale fitted on the past alone, no information from the future in any
forecast, the models' shapes and causality, the quantile loss and the interval's calibration, and
the commands as a user runs them (train, eval, predict, inspect, from files and stdin)."""

import json
import math
import warnings

import numpy as np
import pytest
import torch

from charrnn.errors import CharrnnError, UsageError
from charrnn.forecast import classical
from charrnn.forecast.backtest import backtest
from charrnn.forecast.baselines import BASELINES, baseline_forecast
from charrnn.forecast.model import Forecaster, ForecasterConfig, quantile_loss, wavenet_layers_for
from charrnn.forecast.series import Series, future_dates, read_series
from charrnn.forecast.task import (ForecastDataConfig, PreparedSeries, QuantileForecasts, forecast_at, forecast_next,
                                   load_forecaster, prepare_for, series_of, train_forecaster)
from charrnn.forecast.windows import Scaler, Split, windows_at
from charrnn.train import TrainConfig
from test_cli import assert_one_line_error, run


def monthly_values(n=120, seed=0):
    """A growing series with a yearly season and some noise, above 0."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 * np.exp(0.01 * t + 0.15 * np.sin(2 * np.pi * t / 12) + 0.02 * rng.standard_normal(n))


def write_monthly(path, values):
    lines = ["Month,Sales"] + [f"{1990 + i // 12}-{i % 12 + 1:02d},{v:.3f}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small LSTM forecaster trained on a monthly series (a few seconds)."""
    root = tmp_path_factory.mktemp("forecast")
    path = write_monthly(root / "sales.csv", monthly_values())
    result = train_forecaster(str(path), horizon=6, model_config=dict(model="lstm", hidden_size=16),
                              train=TrainConfig(max_steps=300, eval_every=50), run_dir=root / "run", device="cpu",
                              precision="fp32")
    model, saved = load_forecaster(root / "run" / "best.pt", device="cpu")
    return root, path, result, model, saved


# -- split, scale, windows ------------------------------------------------------------------------


def test_the_split_is_chronological_and_a_short_series_is_one_clear_error():
    split = Split.of(144, horizon=12, window=24, val_size=None, test_size=None)
    assert (split.val_start, split.test_start) == (96, 120)  # two horizons each (10% is less)
    with pytest.raises(CharrnnError, match="too short"):
        Split.of(60, horizon=12, window=24, val_size=None, test_size=None)
    with pytest.raises(UsageError, match="--test-size must hold at least one horizon"):
        Split.of(144, horizon=12, window=24, val_size=None, test_size=5)


def test_the_scale_and_transform_are_fitted_on_the_training_part_only():
    values = monthly_values()
    data = ForecastDataConfig()
    series = Series(values, None, None, "x")
    prepared = PreparedSeries.of(series, data, window=24, horizon=6)
    changed = values.copy()
    changed[prepared.split.val_start:] *= 50  # the validation and test parts become another series
    again = PreparedSeries.of(Series(changed, None, None, "x"), data, window=24, horizon=6)
    assert again.scaler == prepared.scaler
    assert prepared.scaler.transform == "log"  # auto: the series is above 0
    assert Scaler.fit(values - 200, "auto").transform == "none"
    with pytest.raises(UsageError, match="needs values above 0"):
        Scaler.fit(values - 200, "log")


def test_a_window_reads_only_values_up_to_its_origin():
    z = np.arange(50, dtype=float)
    x, anchors = windows_at(z, np.array([20]), window=5, scale=2.0)
    assert anchors.tolist() == [20.0]
    assert x.tolist() == [[-2.0, -1.5, -1.0, -0.5, 0.0]]  # changes from the origin's value, in units of scale


def test_no_information_from_the_future_reaches_any_forecast(trained):
    """Each forecaster's forecast from an origin is the same whatever the values after it are."""
    _, _, _, model, saved = trained
    values = monthly_values()
    series = Series(values, None, "monthly", "Sales")
    prepared = PreparedSeries.of(series, ForecastDataConfig(), window=model.config.window, horizon=6,
                                 scaler=Scaler.from_checkpoint(saved))
    origins = prepared.origins("test", window=model.config.window, horizon=6)
    origin = int(origins[0])
    future = values.copy()
    future[origin + 1 :] = future[origin + 1 :] * 3 + 17
    other = PreparedSeries.of(Series(future, None, "monthly", "Sales"), ForecastDataConfig(), window=model.config.window,
                              horizon=6, scaler=prepared.scaler)
    at = np.array([origin])
    assert np.array_equal(forecast_at(model, prepared, at).median, forecast_at(model, other, at).median)
    for name in BASELINES:
        assert np.array_equal(baseline_forecast(name, values[: origin + 1], 6, 12),
                              baseline_forecast(name, future[: origin + 1], 6, 12))
    if classical.available():
        a = classical.smoothing_forecasts(values, at, 6, season=12, log=True)
        b = classical.smoothing_forecasts(future, at, 6, season=12, log=True)
        assert np.allclose(a, b)


# -- models -------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [dict(model="lstm"), dict(model="gru", bidirectional=True),
                                     dict(model="rnn", decoder="seq2seq"), dict(model="lstm", decoder="seq2seq"),
                                     dict(model="wavenet", num_layers=4)])
def test_every_model_gives_quantiles_for_every_step_and_learns(options):
    torch.manual_seed(0)
    model = Forecaster(ForecasterConfig(window=16, horizon=5, hidden_size=16, **options))
    x = torch.randn(8, 16)
    y = x[:, -5:].flip(1)  # a function of the window
    assert model(x).shape == (8, 5, 3)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = quantile_loss(model(x), y, model.config.quantiles).item()
    for _ in range(60):
        optimiser.zero_grad()
        loss = quantile_loss(model(x), y, model.config.quantiles)
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.5 * first


def test_a_wavenet_forecaster_gets_enough_layers_to_read_its_window():
    # (the stack's causality and receptive field: tests/test_language_wavenet.py)
    assert wavenet_layers_for(24) == 5 and wavenet_layers_for(32) == 5 and wavenet_layers_for(33) == 6
    config = ForecasterConfig(window=36, horizon=12, model="wavenet", num_layers=wavenet_layers_for(36))
    assert config.receptive_field == 36  # 64 reachable, 36 given


def test_the_quantile_loss_is_least_at_the_quantile():
    target = torch.arange(101, dtype=torch.float32).view(1, 101)  # 0..100
    losses = {guess: float(quantile_loss(torch.full((1, 101, 1), float(guess)), target, [0.9]))
              for guess in range(0, 101, 5)}
    assert min(losses, key=losses.get) == 90


def test_interval_calibration_makes_the_interval_hold_the_share_asked_for():
    torch.manual_seed(0)
    model = Forecaster(ForecasterConfig(window=4, horizon=3))
    median = torch.zeros(500, 3)
    raw = torch.stack([median - 0.1, median, median + 0.1], dim=-1)  # far too narrow for N(0, 1)
    target = torch.randn(500, 3)
    model.calibrate_interval(raw, target, 0.8)
    widened = model.calibrated(raw)
    inside = ((target >= widened[..., 0]) & (target <= widened[..., 2])).float().mean()
    assert abs(float(inside) - 0.8) < 0.01
    assert 10 < float(model.interval_width) < 15  # 1.28 standard deviations / 0.1


def test_bad_model_options_are_one_clear_error():
    with pytest.raises(UsageError, match="unknown --model"):
        ForecasterConfig(window=8, horizon=2, model="transformer")
    with pytest.raises(UsageError, match="no --decoder seq2seq"):
        ForecasterConfig(window=8, horizon=2, model="wavenet", decoder="seq2seq")
    with pytest.raises(UsageError, match="--horizon must be between"):
        ForecasterConfig(window=8, horizon=0)


# -- a trained model ----------------------------------------------------------------------------


def test_a_trained_model_beats_the_seasonal_naive_forecast_on_its_test_part(trained):
    _, path, result, model, saved = trained
    assert result.final_metrics["val_mase"] < 1.5
    series = read_series(path)
    prepared = PreparedSeries.of(series, ForecastDataConfig(), window=model.config.window, horizon=6,
                                 scaler=Scaler.from_checkpoint(saved))
    rows = {row.model: row for row in backtest(model, prepared, model_name="lstm", with_classical=False)}
    assert set(rows) == {"lstm", "naive", "seasonal naive", "drift"}
    assert rows["lstm"].origins == 12 - 6 + 1  # every origin whose horizon lies in the test part
    assert rows["lstm"].mase < rows["seasonal naive"].mase
    assert 0.4 <= rows["lstm"].coverage <= 1.0


def test_forecast_next_continues_the_dates_and_refuses_a_longer_horizon(trained):
    _, path, _, model, saved = trained
    series = read_series(path)
    forecast = forecast_next(model, saved, series, horizon=3)
    assert [d.strftime("%Y-%m") for d in forecast.dates] == ["2000-01", "2000-02", "2000-03"]
    assert np.all(forecast.lower <= forecast.median) and np.all(forecast.median <= forecast.upper)
    assert 0.5 * series.values[-12:].min() < forecast.median.mean() < 2 * series.values[-12:].max()
    with pytest.raises(UsageError, match="between 1 and 6"):
        forecast_next(model, saved, series, horizon=7)


def test_the_checkpoint_carries_enough_of_its_series_to_forecast_without_it(trained):
    """predict without a series (a bundled model far from its corpus) forecasts what follows the
    training series, exactly as from the whole file."""
    _, path, _, model, saved = trained
    recent, _ = series_of(saved, None, recent=True)
    assert len(recent) == model.config.window and recent.frequency == "monthly"
    from_file = forecast_next(model, saved, read_series(path))
    from_checkpoint = forecast_next(model, saved, recent)
    assert from_checkpoint.dates == from_file.dates
    assert np.array_equal(from_checkpoint.median, from_file.median)


# -- the commands -------------------------------------------------------------------------------


def test_the_commands_as_a_user_runs_them(trained, tmp_path):
    root, path, _, _, _ = trained
    run_dir = root / "run"
    evaluated = run("forecast", "eval", "-c", str(run_dir), "--json", "--no-classical", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr.decode()
    rows = [json.loads(line) for line in evaluated.stdout.decode().splitlines()]
    assert [r["model"] for r in rows] == ["lstm 2x16", "naive", "seasonal naive", "drift"]
    assert all(math.isfinite(r["mase"]) for r in rows)

    predicted = run("forecast", "predict", "-c", str(run_dir), str(path), "--plot", "next.png", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr.decode()
    lines = predicted.stdout.decode().splitlines()
    assert lines[0] == "date,forecast,lower,upper" and len(lines) == 7
    assert lines[1].startswith("2000-01-01,")
    assert (tmp_path / "next.png").read_bytes()[:4] == b"\x89PNG"

    # One number a line on stdin: no dates, so steps.
    numbers = "\n".join(f"{v:.3f}" for v in monthly_values()[-40:]).encode()
    piped = run("forecast", "predict", "-c", str(run_dir), "-", "--json", cwd=tmp_path, input_bytes=numbers)
    assert piped.returncode == 0, piped.stderr.decode()
    steps = [json.loads(line) for line in piped.stdout.decode().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, 7)) and steps[0]["date"] is None


def test_training_from_the_command_line_reports_json(tmp_path):
    path = write_monthly(tmp_path / "sales.csv", monthly_values(96))
    done = run("forecast", "train", str(path), "--horizon", "3", "--model", "wavenet", "--hidden-size", "8",
               "--max-steps", "20", "--json", "-q", "-o", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    outcome = json.loads(done.stdout)
    assert outcome["task"] == "forecaster" and outcome["steps"] == 20
    info = run("info", "run", "--json", cwd=tmp_path)
    assert json.loads(info.stdout)["task"] == "forecaster"


@pytest.mark.skipif(not classical.available(), reason="statsmodels (the forecast extra) is not installed")
def test_inspect_finds_the_season_and_draws_the_parts(tmp_path):
    path = write_monthly(tmp_path / "sales.csv", monthly_values())
    done = run("forecast", "inspect", str(path), "--json", "--plot", "parts.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout)
    assert summary["season"] == 12 and summary["frequency"] == "monthly"
    assert summary["seasonal_strength"] > 0.8 and summary["decomposed_on"] == "log values"
    acf = summary["autocorrelation_of_changes"]
    assert acf[11] == max(acf[:13])  # the changes repeat a year later
    assert (tmp_path / "parts.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, fragment", [
    (["forecast", "train", "sales.csv"], "--horizon"),
    (["forecast", "train", "sales.csv", "--horizon", "3", "--model", "tcn"], "unknown --model"),
    (["forecast", "train", "sales.csv", "--horizon", "60"], "too short"),
    (["forecast", "train", "gappy.csv", "--horizon", "3"], "line 4: a gap"),
    (["forecast", "train", "sales.csv", "--horizon", "3", "--transform", "sqrt"], "unknown --transform"),
    (["forecast", "predict", "-c", "nothing-here"], "nothing-here"),
    (["forecast", "inspect", "sales.csv", "--plot", "parts.pdf"], ".png"),
])
def test_bad_input_is_one_line(tmp_path, args, fragment):
    write_monthly(tmp_path / "sales.csv", monthly_values(60))
    (tmp_path / "gappy.csv").write_text("Month,Sales\n2000-01,1\n2000-02,2\n2000-04,3\n2000-05,4\n")
    assert_one_line_error(run(*args, cwd=tmp_path), 2 if "--" in fragment or fragment == ".png" else 1, fragment)


# -- found by the fuzz suite (tests/test_fuzz.py) ---------------------------------------------------


def test_a_series_too_short_for_a_trained_model_asks_for_a_longer_one(trained):
    """eval splits a series as the model's run split its own: only a longer series helps, not the
    training options (--window, --horizon, ...) that eval does not have."""
    _, path, _, model, saved = trained
    short = Series(monthly_values(30), None, None, "Sales")
    with pytest.raises(CharrnnError, match="give a longer series") as error:
        prepare_for(model, saved, short, "short.csv")
    assert "--" not in error.value.message
    with pytest.raises(CharrnnError, match="smaller --window"):  # a new run can choose other parts
        PreparedSeries.of(short, ForecastDataConfig(), window=24, horizon=6)


def test_odd_csv_text_is_read_or_one_clear_error():
    # A header alone is no series (it was "0 values: too short").
    with pytest.raises(CharrnnError, match="has a header \\(Month, Sales\\) and no values"):
        read_series("", text="Month,Sales\n")
    with pytest.raises(CharrnnError, match="one line of numbers \\(1, 2, 3\\); give one number a line"):
        read_series("", text="1,2,3\n")
    # Old Mac line ends on stdin (a file's are translated as it is read) were a csv.Error.
    assert read_series("", text="50.0\r75.0\r").values.tolist() == [50.0, 75.0]
    assert read_series("", text="Month,Sales\r2000-01,1\r2000-02,2\r").values.tolist() == [1.0, 2.0]
    # A cell longer than the csv module's limit was a csv.Error too.
    with pytest.raises(CharrnnError, match="line 1 does not read as CSV"):
        read_series("", text="a" * 200_000)


def test_a_series_at_the_end_of_the_calendar():
    # The last day of December 9999 has no next month to count back from: reading such a series
    # raised ValueError, and so did forecasting past it.
    series = read_series("", text="Month,Sales\n9999-10-31,1\n9999-11-30,2\n9999-12-31,3\n")
    assert series.frequency == "monthly"
    with pytest.raises(CharrnnError, match="past the last date"):
        future_dates(series, 2)
    daily = read_series("", text="date,value\n9999-12-30,1\n9999-12-31,2\n")
    with pytest.raises(CharrnnError, match="past the last date"):
        future_dates(daily, 1)


def test_values_too_large_to_forecast_are_refused_and_large_ones_stay_finite():
    # 1e308 is finite, but its changes, squares and forecasts are not: inf scores, NaN
    # autocorrelations and "training diverged: try a lower --lr" before.
    with pytest.raises(CharrnnError, match="line 3: value is 1e308, beyond the largest value"):
        read_series("", text="1\n2\n1e308\n")
    # Forecasts of a series of 1e40s: the model's float32 output times the scale overflowed
    # float32 into inf.
    values = 1e40 * (1 + 0.1 * np.sin(np.arange(80)))
    series = Series(values, None, None, "big")
    prepared = PreparedSeries.of(series, ForecastDataConfig(transform="none"), window=12, horizon=3)
    assert prepared.scaler.scale > 1e38
    predicted = np.full((1, 3, 3), 2.0, dtype=np.float32)
    forecasts = QuantileForecasts.of(predicted, prepared, np.array([70]), ForecasterConfig(window=12, horizon=3))
    assert np.all(np.isfinite(forecasts.median)) and np.all(np.isfinite(forecasts.upper))


@pytest.mark.skipif(not classical.available(), reason="statsmodels (the forecast extra) is not installed")
def test_the_classical_model_prints_no_warnings():
    # A series it fits exactly made statsmodels' forecast warn (the log of a zero error sum) on
    # stderr, outside the block that silences its fitting.
    values = np.tile([-1.0, 1.0], 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forecasts = classical.smoothing_forecasts(values, np.array([60, 70]), 3, season=12, log=False)
    assert forecasts.shape == (2, 3)


def test_a_bad_device_is_the_users_mistake_not_the_checkpoints(trained):
    root = trained[0]
    with pytest.raises(UsageError, match="unknown device") as error:
        load_forecaster(root / "run" / "best.pt", device="cuda:0")
    assert "damaged" not in error.value.message


def test_a_model_that_forecasts_nonsense_is_one_clear_error(trained):
    # A run trained with a learning rate far too high forecasts log values beyond exp's range:
    # numpy's overflow warnings on stderr and inf in the CSV before.
    _, path, _, model, saved = trained
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Scaler("log", 1.0).inverse(np.array([1000.0]))[0] == math.inf
    broken = Forecaster(model.config)
    broken.load_state_dict(model.state_dict())
    with torch.no_grad():
        broken.head.bias.fill_(1e6)
    with pytest.raises(CharrnnError, match="forecasts NaN or values beyond"):
        forecast_next(broken.eval(), saved, read_series(path))
