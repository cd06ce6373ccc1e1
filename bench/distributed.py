"""Data-parallel training under torchrun against one process, on the same global batch: 2 ranks of
1 thread each (gloo) against 1 process of 2 threads and 1 process of 1 thread, training the
language model at the default size (LSTM 2x256, 16 x 64) and at the bundled model's (2x512, 64 x
128), on each precision path. Speed is training characters per second between step WARMUP and
the last step, read from each run's log (no evaluation falls in between). Also prints the
gradient bytes one step all-reduces for each bundled model (DDP all-reduces fp32 gradients
whatever the autocast dtype), and how long one all-reduce of that size takes between 2 gloo
processes on this machine.

    python bench/distributed.py [--steps 40] [--precision both|fp32|auto] [--quick]

Needs the two cores to itself: every configuration uses both (2 threads, or 2 processes), except
the 1-thread baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import bench_env, charrnn_command, corpus_path, log, make_parser, precision_label, precision_paths, print_table

from charrnn.checkpoint import bundled_models, load_checkpoint

# (hidden size, layers, batch, window)
SHAPES = [(256, 2, 16, 64), (512, 2, 64, 128)]
WARMUP = 5  # steps left out: the first set up kernels, optimiser state and DDP's buckets
LAYOUTS = [("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2), ("2 ranks x 1 thread (gloo)", 2, 1)]


def train_command(processes: int, corpus: Path, shape: tuple[int, int, int, int], steps: int, precision: str,
                  run_dir: Path) -> list[str]:
    hidden, layers, batch, window = shape
    launcher = (charrnn_command() if processes == 1 else
                [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
                 "-m", "charrnn"])
    return [*launcher, "train", str(corpus), "--hidden-size", str(hidden), "--num-layers", str(layers),
            "--batch-size", str(batch), "--seq-len", str(window), "--dropout", "0", "--lr", "0.002",
            "--warmup-steps", "2", "--weight-decay", "0.1", "--max-steps", str(steps), "--eval-every", str(steps + 1),
            "--precision", precision, "--device", "cpu", "--run-dir", str(run_dir), "--overwrite", "-q"]


def chars_per_second(run_dir: Path) -> float:
    """Training speed between step WARMUP and the last step, from the run's log."""
    steps = [e for e in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if e["event"] == "step"]
    first = next(e for e in steps if e["step"] == WARMUP)
    last = steps[-1]
    return (last["tokens"] - first["tokens"]) / (last["elapsed"] - first["elapsed"])


def measure(corpus: Path, shape, steps: int, precision: str, processes: int, threads: int, work: Path) -> float:
    run_dir = work / f"run-{processes}x{threads}"
    env = {**bench_env(work / "cache"), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(train_command(processes, corpus, shape, steps, precision, run_dir), env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: a training run failed:\n{done.stderr[-2000:]}")
    return chars_per_second(run_dir)


def gradient_bytes() -> list[list]:
    """Each bundled model's trained parameters, the fp32 gradient bytes a step all-reduces
    (buffers, such as the classifier's n-gram counts, are fitted from the data, not trained), and
    the measured time of one all-reduce of that size between 2 gloo processes here."""
    import charrnn

    loaders = {"language_model": charrnn.load_language_model, "translator": charrnn.load_translator,
               "classifier": charrnn.load_classifier, "forecaster": charrnn.load_forecaster}
    from charrnn.language.model import LanguageModel, LanguageModelConfig

    default = LanguageModel(LanguageModelConfig(vocab_size=65, hidden_size=256, num_layers=2))
    counts = {"(the default language model, 2x256)": ("language_model", sum(p.numel() for p in default.parameters()))}
    for name, path in bundled_models().items():
        task = load_checkpoint(path).task
        model = loaders[task](path, device="cpu")[0]
        counts[name] = (task, sum(p.numel() for p in model.parameters() if p.requires_grad))
    seconds = measured_all_reduce([count for _, count in counts.values()])
    return [[name, task, f"{count:,}", f"{4 * count / 1e6:.1f} MB", f"{1000 * seconds[count]:.1f} ms"]
            for name, (task, count) in counts.items()]


def all_reduce_seconds(rank: int, sizes: list[int], port: int, results) -> None:
    """In each of 2 gloo processes (1 thread each): the median time of an all-reduce of each size
    (fp32 elements), as DDP's all-reduce of a step's gradients would take without overlap."""
    import statistics
    import time

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    for _ in range(5):
        dist.all_reduce(torch.ones(max(sizes)))  # the connection's first transfers are slow
    for size in sizes:
        tensor = torch.ones(size)
        seconds = []
        for _ in range(12):
            started = time.perf_counter()
            dist.all_reduce(tensor)
            seconds.append(time.perf_counter() - started)
        if rank == 0:
            results[size] = statistics.median(seconds[2:])
    dist.destroy_process_group()


def measured_all_reduce(counts: list[int]) -> dict[int, float]:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:  # a free port for the processes to meet on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(all_reduce_seconds, args=(counts, port, results), nprocs=2)
        return dict(results)


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--steps", type=int, default=40, help="training steps per run [default: 40]")
    parser.add_argument("--communication-only", action="store_true", help="only the communication table")
    args = parser.parse_args()
    corpus = corpus_path(args)
    shapes = [] if args.communication_only else [(64, 1, 8, 32)] if args.quick else SHAPES
    steps = WARMUP + 5 if args.quick else args.steps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, dtype in precision_paths(args):
            for shape in shapes:
                speeds = {}
                for label, processes, threads in LAYOUTS:
                    log(f"{name}, {shape[0]}x{shape[1]} at {shape[2]}x{shape[3]}: {label}")
                    speeds[label] = measure(corpus, shape, steps, name, processes, threads, Path(tmp))
                baseline = speeds[LAYOUTS[1][0]]
                for label, speed in speeds.items():
                    rows.append([precision_label(name, dtype), f"LSTM {shape[1]}x{shape[0]}, {shape[2]}x{shape[3]}", label,
                                 f"{speed:,.0f}", f"{speed / baseline:.2f}x"])
    if rows:
        print_table(["precision", "model, batch", "layout", "chars/s", "vs 1 process x 2 threads"], rows,
                    title=f"Data-parallel training on {os.cpu_count()} cores: the same global batch, {steps} steps")
    print_table(["bundled model", "task", "trained parameters", "gradient bytes all-reduced per step",
                 "one all-reduce, 2 gloo processes here"], gradient_bytes(), title="Communication per step")


if __name__ == "__main__":
    main()
