"""`charrnn forecast`: train a forecaster on a series, evaluate it beside the baselines over rolling
origins, forecast the next values (CSV), and inspect a series (trend, seasonality, autocorrelation).
Thin commands over charrnn.forecast, like the rest of the CLI."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import TRAINING_OPTIONS, TrainingOptions, with_options
from ..cli_support import CONTEXT, finish_training
from ..numbers import check_range
from ..output_files import check_plot_file

BUNDLED = "airline"  # charrnn/models/airline.pt
DEFAULT_MAX_STEPS = 2000  # with early stopping, which ends most runs well before

forecast_app = typer.Typer(
    context_settings=CONTEXT,
    help="Forecast numeric series (CSV or one number a line) with recurrent or WaveNet models: train, "
         "eval (beside naive, seasonal naive, drift and exponential smoothing), predict, inspect.",
    rich_markup_mode="rich",
    no_args_is_help=True,
)

# Reading a series: the same options for every command that reads one.
Column = Annotated[Optional[str], typer.Option(rich_help_panel="Data", help="The value column \\[default: the only numeric one; for a trained model, its own].")]
DateColumn = Annotated[Optional[str], typer.Option(rich_help_panel="Data", help="The date column \\[default: found by its name or contents].")]
Fill = Annotated[Optional[str], typer.Option(rich_help_panel="Data", help="Fill missing values: previous or linear \\[default: a missing value is an error].")]
Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-c", help="Forecaster checkpoint: a file, a run folder, or a bundled model's name.")]
Device = Annotated[str, typer.Option(rich_help_panel="Hardware", help="auto, cpu, cuda or mps.")]
SeriesArgument = Annotated[Optional[str], typer.Argument(metavar="SERIES", help="A CSV file, or - for stdin \\[default: the series the model trained on; for predict, its end, which the checkpoint carries].")]

FORECAST_HELPS = {
    "hidden_size": "Width of each recurrent layer, or the WaveNet's channels.",
    "num_layers": "Stacked recurrent layers, or the WaveNet's dilated layers \\[default: 2; for a WaveNet, enough to cover --window].",
    "dropout": "Dropout inside the body and before the output.",
    "batch_size": "Windows per batch.",
    "max_steps": f"Stop after this many optimiser steps \\[default: {DEFAULT_MAX_STEPS} when no other stop is given; early stopping usually ends a run first].",
}


@forecast_app.command("train", context_settings=CONTEXT)
@with_options(TRAINING_OPTIONS, defaults=dict(hidden_size=64, num_layers=None, batch_size=32),
              omit=("cell", "embedding_size", "tokenizer", "vocab_size"), helps=FORECAST_HELPS)
def forecast_train(
    series: Annotated[Optional[str], typer.Argument(help="A CSV file (or - for one number a line on stdin) \\[not needed with --resume].")] = None,
    horizon: Annotated[Optional[int], typer.Option(rich_help_panel="Forecast", help="How many values each forecast predicts.")] = None,
    window: Annotated[Optional[int], typer.Option(rich_help_panel="Forecast", help="Past values each forecast reads \\[default: three seasons or two horizons, whichever is more].")] = None,
    model: Annotated[str, typer.Option(rich_help_panel="Model", help="wavenet (measured best), lstm, gru or rnn.")] = "wavenet",
    decoder: Annotated[str, typer.Option(rich_help_panel="Model", help="For lstm, gru and rnn: direct (every step from one head; measured as good and faster) or seq2seq (a decoder steps through the horizon).")] = "direct",
    bidirectional: Annotated[bool, typer.Option("--bidirectional", rich_help_panel="Model", help="A recurrent encoder reads the window both ways.")] = False,
    column: Column = None,
    date_column: DateColumn = None,
    fill: Fill = None,
    transform: Annotated[str, typer.Option(rich_help_panel="Data", help="auto (log for a series above 0), log or none; fitted on the training part.")] = "auto",
    val_size: Annotated[Optional[int], typer.Option(rich_help_panel="Data", help="Values before the test part held out for early stopping \\[default: 10%, at least two horizons].")] = None,
    test_size: Annotated[Optional[int], typer.Option(rich_help_panel="Data", help="The last values, held out for `forecast eval` \\[default: 10%, at least two horizons].")] = None,
    **shared,
):
    """Train a forecaster; checkpoints go to checkpoints/<series name>/.

    The last part of the series is held out for testing and the part before it for early stopping."""
    from ..console import TrainingProgress
    from .task import ForecastDataConfig, train_forecaster

    options = TrainingOptions.take(shared)
    train = options.train_config(default_epochs=None)
    if train.max_steps is None and train.epochs is None and train.time_budget is None and options.resume is None:
        train.max_steps = DEFAULT_MAX_STEPS
    data = ForecastDataConfig(column=column, date_column=date_column, fill=fill, transform=transform, val_size=val_size,
                              test_size=test_size, batch_size=options.batch_size or 32)
    model_config = dict(model=model, decoder=decoder, bidirectional=bidirectional, hidden_size=options.hidden_size,
                        num_layers=options.num_layers, dropout=options.dropout or 0.0)
    progress = TrainingProgress(quiet=options.quiet, unit="values")
    result = train_forecaster(series, horizon=horizon, window=window, model_config=model_config, data=data, train=train,
                              run_dir=options.run_dir, resume=options.resume, device=options.device,
                              precision=options.precision, overwrite=options.overwrite, on_event=progress)
    finish_training(result, quiet=options.quiet, command="charrnn forecast train", as_json=options.as_json)


@forecast_app.command("eval", context_settings=CONTEXT)
def forecast_eval(
    series: SeriesArgument = None,
    checkpoint: Checkpoint = Path(BUNDLED),
    log_scale: Annotated[bool, typer.Option("--log-scale", help="Score the log of the values (the scale of returns: use it for prices).")] = False,
    classical: Annotated[bool, typer.Option("--classical/--no-classical", help="Include exponential smoothing (statsmodels).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one a model: model, mae, rmse, smape, mase, directional_accuracy, coverage, origins, horizon.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Save the model's forecasts at the test origins over the series as a PNG.")] = None,
    column: Column = None,
    date_column: DateColumn = None,
    fill: Fill = None,
    device: Device = "auto",
):
    """Score the model beside the baselines over the held-out test part: a table on stdout.

    Rolling origin: a forecast from every origin in the test part, each seeing only the values up to it."""
    from ..console import stderr_console
    from .backtest import backtest
    from .task import load_forecaster, prepare_for, series_of

    if plot is not None:
        check_plot_file(plot, "--plot")
    model, saved = load_forecaster(checkpoint, device=device)
    values, label = series_of(saved, series, column=column, date_column=date_column, fill=fill)
    prepared = prepare_for(model, saved, values, label)
    config = model.config
    rows = backtest(model, prepared, model_name=_model_name(config), log_scale=log_scale, with_classical=classical)
    stderr_console.print(f"{label}: {len(values):,} values; test part: the last {len(values) - prepared.split.test_start:,}, "
                         f"{rows[0].origins:,} forecast origins, horizon {config.horizon}"
                         + (" (scored on log values)" if log_scale else ""), markup=False)
    if as_json:
        for row in rows:
            print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.as_dict().items()}))
    else:
        print("model\tmae\trmse\tsmape\tmase\tdirectional_accuracy\tcoverage_80")
        for row in rows:
            if row.note:
                print(f"{row.model}\t-\t-\t-\t-\t-\t-\t({row.note})")
                continue
            coverage = f"{row.coverage:.3f}" if row.coverage is not None else "-"
            print(f"{row.model}\t{row.mae:.4g}\t{row.rmse:.4g}\t{row.smape:.2f}\t{row.mase:.3f}\t"
                  f"{row.directional_accuracy:.3f}\t{coverage}")
    if plot is not None:
        from .plots import plot_backtest
        from .task import forecast_at

        origins = prepared.origins("test", window=config.window, horizon=config.horizon)
        plot_backtest(values, origins, forecast_at(model, prepared, origins), plot)
        stderr_console.print(f"plot saved to {plot}", markup=False)


@forecast_app.command("predict", context_settings=CONTEXT)
def forecast_predict(
    series: SeriesArgument = None,
    checkpoint: Checkpoint = Path(BUNDLED),
    horizon: Annotated[Optional[int], typer.Option(help="Values to forecast \\[default: the model's horizon].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one a step: step, date, forecast, lower, upper.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Save the history with the forecast and its 80% interval as a PNG.")] = None,
    column: Column = None,
    date_column: DateColumn = None,
    fill: Fill = None,
    device: Device = "auto",
):
    """Forecast the values after the series ends: CSV on stdout (date, forecast, lower, upper).

    lower and upper bound the 80% interval; a series without dates gets step numbers instead of dates."""
    from .task import forecast_next, load_forecaster, series_of

    if plot is not None:
        check_plot_file(plot, "--plot")
    model, saved = load_forecaster(checkpoint, device=device)
    values, _ = series_of(saved, series, column=column, date_column=date_column, fill=fill, recent=True)
    forecast = forecast_next(model, saved, values, horizon)
    steps = range(1, len(forecast.median) + 1)
    dates = [_date(d) for d in forecast.dates] if forecast.dates is not None else None
    if not as_json:
        print(("date" if dates else "step") + ",forecast,lower,upper")
    for i, step in enumerate(steps):
        numbers = [float(forecast.median[i]), float(forecast.lower[i]), float(forecast.upper[i])]
        if as_json:
            print(json.dumps({"step": step, "date": dates[i] if dates else None, "forecast": numbers[0],
                              "lower": numbers[1], "upper": numbers[2]}))
        else:
            print(",".join([dates[i] if dates else str(step)] + [f"{n:.6g}" for n in numbers]))
    sys.stdout.flush()
    if plot is not None:
        from ..console import stderr_console
        from .plots import plot_forecast

        plot_forecast(values, forecast, plot)
        stderr_console.print(f"plot saved to {plot}", markup=False)


@forecast_app.command("inspect", context_settings=CONTEXT)
def forecast_inspect(
    series: Annotated[str, typer.Argument(help="A CSV file, or - for stdin.")],
    column: Column = None,
    date_column: DateColumn = None,
    fill: Fill = None,
    season: Annotated[Optional[int], typer.Option(help="The seasonal period \\[default: from the frequency: 12 for monthly, 7 for daily, ...].")] = None,
    lags: Annotated[int, typer.Option(help="Autocorrelation lags to compute and plot.")] = 36,
    as_json: Annotated[bool, typer.Option("--json", help="The summary as one JSON object.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Save the decomposition (trend, seasonality, residual) and the autocorrelation as a PNG.")] = None,
):
    """Describe a series: its trend, seasonality (STL) and autocorrelation.

    Also its length, dates and frequency, and how strong its trend and seasonality are (0 to 1)."""
    from .inspect import describe_series
    from .task import ForecastDataConfig, load_series

    if plot is not None:
        check_plot_file(plot, "--plot")
    if season is not None:
        check_range(season, "--season", 1, 100_000)
    check_range(lags, "--lags", 1, 100_000)
    data = ForecastDataConfig(column=column, date_column=date_column, fill=fill)
    data.validate()
    values = load_series(series, data)
    summary = describe_series(values, season=season, lags=lags)
    if as_json:
        print(json.dumps(summary.as_dict()))
    else:
        print(summary.as_text())
    if plot is not None:
        from ..console import stderr_console
        from .plots import plot_decomposition

        plot_decomposition(values, summary, plot)
        stderr_console.print(f"plot saved to {plot}", markup=False)


def _model_name(config) -> str:
    """A model's row name: 'lstm 2x64', 'lstm 2x64 seq2seq', 'wavenet 6x64 (reads 36 values)': a
    WaveNet reads the smaller of its window and its receptive field."""
    if config.model == "wavenet":
        return f"wavenet {config.num_layers}x{config.hidden_size} (reads {config.receptive_field} values)"
    return f"{config.model} {config.num_layers}x{config.hidden_size}" + (" seq2seq" if config.decoder == "seq2seq" else "")


def _date(when) -> str:
    return when.strftime("%Y-%m-%d %H:%M") if when.hour or when.minute else when.strftime("%Y-%m-%d")
