"""Recurrent against convolutional on text at equal wall-clock budgets: `charrnn train` with its
default LSTM language model, and with `--cell wavenet` (default: 8 dilated layers, a receptive field
of 256 characters) at each WaveNet width asked for, every row trained by the real command line for
the same --time-budget, one after another, on each precision path. Reports validation bits per
character, parameters, steps, training and sampling speed, and the context each model reads.

    python bench/wavenet_text.py [--time-budget 120] [--channels 256,128] [--precision both|fp32|auto]
                                 [--threads 2] [--quick]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from common import (LN2, bench_corpus, evaluate_recurrent, log, make_parser, precision_label, precision_paths,
                    print_table, run_charrnn, set_threads, split)

from charrnn.language.sampling import SamplingConfig, generate
from charrnn.language.task import load_language_model

SAMPLE_TOKENS = 2000  # timed generation, batch 1, fp32, after SAMPLE_WARMUP untimed tokens
SAMPLE_WARMUP = 200


def sampling_speed(model, tokens: int) -> float:
    """Characters per second that charrnn's own generate makes at batch 1 (temperature 0.8)."""
    generator = torch.Generator().manual_seed(1)
    for _ in generate(model, [0], SAMPLE_WARMUP, SamplingConfig(), generator):
        pass
    start = time.perf_counter()
    for _ in generate(model, [0], tokens, SamplingConfig(), generator):
        pass
    return tokens / (time.perf_counter() - start)


def run_row(name: str, options: list[str], corpus: Path, budget: float, work: Path, val: torch.Tensor,
            chars: list[str], precision: str, sample_tokens: int) -> dict:
    """One `charrnn train` run of `budget` seconds with the options given (the rest its defaults);
    its best.pt scored by the shared fp32 protocol and timed sampling."""
    run_dir = work / f"run-{len(list(work.glob('run-*')))}"
    args = ["train", str(corpus), *options, "--time-budget", str(budget), "--run-dir", str(run_dir),
            "--precision", precision, "-q", "--json"]
    log(f"{name}: charrnn {' '.join(args)}")
    summary, _ = run_charrnn(args, work / "cache")
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["event"] == "start")
    last_step = [e for e in events if e["event"] == "step"][-1]
    settings = start.get("settings") or {}
    model, vocab, _ = load_language_model(run_dir / "best.pt", device="cpu")
    assert [vocab.decode([i]) for i in range(vocab.size)] == chars, "charrnn's ids differ from the bench's"
    # The same protocol for every row (16 streams, 256-character windows, state carried; for the
    # WaveNet the state is each layer's last inputs, so the windows are exact too), in fp32, so
    # that no row grades itself in its own precision.
    val_loss = evaluate_recurrent(lambda x, state: model(x, state)[:2], val)
    field = model.config.receptive_field
    own = (summary.get("best") or {}).get("val_bpc", float("nan"))
    log(f"  {summary['steps']} steps; charrnn's own best: {own:.4f} bpc; "
        f"shared protocol: {val_loss / LN2:.4f} bpc")
    return {
        "model": f"{name} {model.config.num_layers}x{model.config.hidden_size}",
        "parameters": start["parameters"],
        "context": "unbounded (carried state)" if field is None else f"{field} chars (receptive field)",
        "batch": f"{settings['batch_size']}x{settings['seq_len']}" if settings else "given",
        "steps": summary["steps"],
        "train_chars_per_s": last_step["tokens"] / last_step["elapsed"],
        "sample_chars_per_s": sampling_speed(model, sample_tokens),
        "val_bpc": val_loss / LN2,
    }


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds of `charrnn train` per row, its own timing, evaluations and checkpoints "
                             "included [default: 120; 5 with --quick]")
    parser.add_argument("--channels", default="256,128",
                        help="WaveNet widths (--hidden-size), one row each [default: 256,128: the default, and about "
                             "the LSTM's parameters and training speed]")
    args = parser.parse_args()
    budget = args.time_budget or (5.0 if args.quick else 120.0)
    channels = [int(c) for c in args.channels.split(",") if c.strip()]
    sample_tokens = 500 if args.quick else SAMPLE_TOKENS
    set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-wavenet-") as tmp:
        work = Path(tmp)
        corpus, ids, chars, label = bench_corpus(args, work)
        _, val = split(ids)
        log(f"corpus {corpus}: {len(ids):,} chars, vocabulary {len(chars)}, validation {len(val):,}; "
            f"budget {budget:g} s a row")
        rows_options = [("LSTM", [])] + [("WaveNet", ["--cell", "wavenet", "--hidden-size", str(c)]) for c in channels]
        for precision, dtype in precision_paths(args):
            rows = []
            for name, options in rows_options:
                log(f"training {' '.join([name, *options])} for {budget:g} s, precision {precision_label(precision, dtype)}")
                r = run_row(name, options, corpus, budget, work, val, chars, precision, sample_tokens)
                rows.append([r["model"], f"{r['parameters']:,}", r["context"], r["batch"], r["steps"],
                             f"{r['train_chars_per_s']:,.0f}", f"{r['sample_chars_per_s']:,.0f}", f"{r['val_bpc']:.3f}"])
            print_table(["model", "parameters", "context", "batch", "steps", "train chars/s", "sample chars/s",
                         "val bpc"], rows,
                        title=f"LSTM against WaveNet: {budget:g} s of `charrnn train` each, precision "
                              f"{precision_label(precision, dtype)}, validation = last 10% of {label}; sampling "
                              f"at batch 1 in fp32")


if __name__ == "__main__":
    main()
