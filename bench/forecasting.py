"""Forecasting: each charrnn model (trained with `charrnn forecast train`, defaults but the model)
beside naive, seasonal naive, drift and exponential smoothing, over the rolling origins of each
series' held-out test part; one table per series and precision path.

Series: airline-passengers (monthly, horizon 12) and btc-usd-daily's close (horizon 1 and 7, scored
on log prices, the scale of returns). Each model row is the mean over --seeds training seeds (MASE
with its spread); train s is the wall time of the whole `charrnn forecast train` command.

--part dev scores the validation part instead (the series without its test part, split again the
same way): the figures settings were chosen on. --part test is the held-out report, looked at once.
"""

from __future__ import annotations

import csv
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, make_parser, precision_paths, run_charrnn, set_threads  # noqa: E402


@dataclass
class Case:
    name: str
    file: str
    column: str
    horizon: int
    log_scale: bool


CASES = [
    Case("airline-passengers, horizon 12", "airline-passengers.csv", "Passengers", 12, False),
    Case("btc-usd-daily close, horizon 1 (log prices)", "btc-usd-daily.csv", "close", 1, True),
    Case("btc-usd-daily close, horizon 7 (log prices)", "btc-usd-daily.csv", "close", 7, True),
]
MODELS = ["--model wavenet", "--model lstm", "--model gru", "--model rnn", "--model lstm --decoder seq2seq"]


def series_file(case: Case, part: str, scratch: Path) -> Path:
    """The series to train on: the corpus file, or for --part dev the same without its test part
    (so that the validation part becomes the part scored, and nothing after it is read)."""
    from charrnn.corpora import locate_data_file
    from charrnn.forecast.task import ForecastDataConfig, PreparedSeries, load_series
    from charrnn.forecast.task import default_window
    from charrnn.forecast.series import season_length

    path = locate_data_file(case.file, "series")
    if part == "test":
        return path
    series = load_series(str(path), ForecastDataConfig(column=case.column))
    window = default_window(case.horizon, season_length(series))
    cut = PreparedSeries.of(series, ForecastDataConfig(), window=window, horizon=case.horizon).split.test_start
    out = scratch / f"dev-{case.horizon}-{path.name}"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    with open(out, "w", newline="") as f:
        csv.writer(f).writerows(rows[: cut + 1])  # the header and the values before the test part
    return out


def train(case: Case, path: Path, model: str, seed: int, precision: str, run_dir: Path) -> float:
    _, seconds = run_charrnn(["forecast", "train", str(path), "--column", case.column, "--horizon", str(case.horizon),
                              "--seed", str(seed), "--precision", precision, "-o", str(run_dir), "--overwrite", "--quiet",
                              "--json", *model.split()])
    return seconds


def scores(case: Case, run_dir: Path, path: Path, with_baselines: bool):
    from charrnn.forecast.backtest import backtest
    from charrnn.forecast.task import load_forecaster, prepare_for, series_of

    model, saved = load_forecaster(run_dir / "best.pt", device="cpu")
    series, label = series_of(saved, str(path))
    rows = backtest(model, prepare_for(model, saved, series, label), model_name="model", log_scale=case.log_scale,
                    with_classical=with_baselines)
    return rows if with_baselines else rows[:1]


def table(case: Case, models: list[str], seeds: list[int], precision: str, part: str, scratch: Path) -> None:
    path = series_file(case, part, scratch)
    print(f"\n### {case.name}, {part} part, precision {precision}\n")
    print("| model | MASE (mean ± sd over seeds) | sMAPE % | directional accuracy | 80% coverage | train s |")
    print("|---|---|---|---|---|---|")
    baselines = None
    best = None
    for model in models:
        results, seconds = [], []
        for seed in seeds:
            run_dir = scratch / f"run-{case.horizon}-{model.replace(' ', '_')}-{seed}-{precision}"
            log(f"{case.name}: {model}, seed {seed}, {precision}")
            seconds.append(train(case, path, model, seed, precision, run_dir))
            rows = scores(case, run_dir, path, with_baselines=baselines is None)
            if baselines is None:
                baselines = rows[1:]
            results.append(rows[0])
        mases = [r.mase for r in results]
        mean = statistics.mean(mases)
        spread = statistics.stdev(mases) if len(mases) > 1 else 0.0
        best = min(best or (mean, model), (mean, model))
        print(f"| {model.replace('--model ', '')} | {mean:.3f} ± {spread:.3f} | {statistics.mean(r.smape for r in results):.2f} | "
              f"{statistics.mean(r.directional_accuracy for r in results):.3f} | "
              f"{statistics.mean(r.coverage for r in results):.3f} | {statistics.median(seconds):.1f} |", flush=True)
    for row in baselines:
        if row.note:
            print(f"| {row.model} | ({row.note}) | | | | |")
        else:
            print(f"| {row.model} | {row.mase:.3f} | {row.smape:.2f} | {row.directional_accuracy:.3f} | - | - |")
    by_name = {row.model: row.mase for row in baselines if not row.note}
    mean, model = best
    verdicts = [f"best charrnn model: {model.replace('--model ', '')}, MASE {mean:.3f}"]
    for name in ("naive", "seasonal naive", "exponential smoothing"):
        if name in by_name:
            ratio = mean / by_name[name]
            verdicts.append(f"{ratio:.2f}x {name}'s" + (" (worse)" if ratio > 1 else ""))
    print("\n" + "; ".join(verdicts) + f". {results[0].origins} origins.")


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--part", choices=("test", "dev"), default="test",
                        help="test: the held-out report; dev: the validation part, for choosing settings")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per model [default: 3; 1 with --quick]")
    parser.add_argument("--models", nargs="+", default=MODELS,
                        help="forecast train options of each model row [default: the four models and lstm seq2seq]")
    parser.add_argument("--only", choices=("airline", "btc"), default=None, help="one series only")
    args = parser.parse_args()
    set_threads(args.threads)
    seeds = [1337 + i for i in range(1 if args.quick else args.seeds)]
    cases = [c for c in CASES if args.only is None or c.file.startswith(args.only)]
    models = args.models[:2] if args.quick else args.models
    if args.quick:
        cases = cases[:1]
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-forecast-") as scratch:
        for case in cases:
            for name, _ in precision_paths(args):
                table(case, models, seeds, name, args.part, Path(scratch))


if __name__ == "__main__":
    main()
