"""Helpers shared by the benchmark scripts: arguments, finding the corpus, character encoding for
the baselines, the shared validation protocol, subprocess timing and peak RSS, Markdown tables.

Results (tables) go to stdout; progress goes to stderr through log()."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

LN2 = math.log(2)
VAL_FRAC = 0.1  # the last 10% of the corpus is validation, as charrnn and nanoGPT split it


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes; its description is doc's first paragraph."""
    parser = argparse.ArgumentParser(description=" ".join(doc.split("\n\n")[0].split()))
    parser.add_argument("--quick", action="store_true", help="a small, fast version, to check that the script works")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="corpus file [default: tinyshakespeare.txt from the corpus folders]")
    parser.add_argument("--precision", choices=("both", "fp32", "auto"), default="both",
                        help="the training precision paths to measure [default: both]: fp32 (forced: what a CPU "
                             "without fast bf16 gets) and auto (bf16 where the hardware runs it fast)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads, here and in charrnn children [default: 2]; use 1 while "
                             "something else keeps the cores busy: OpenMP threads that must wait for "
                             "a busy core make every step many times slower")
    return parser


def set_threads(count: int) -> None:
    """Use `count` torch threads here and in every child (OMP_NUM_THREADS sets torch's default)."""
    torch.set_num_threads(count)
    os.environ["OMP_NUM_THREADS"] = str(count)


def precision_paths(args: argparse.Namespace) -> list[tuple[str, torch.dtype | None]]:
    """The precision paths to measure, each as (name, autocast dtype or None for fp32). auto is
    left out where it resolves to fp32 (no fast bf16 here): the fp32 path measures it already."""
    from charrnn.devices import resolve_precision

    cpu = torch.device("cpu")
    names = ["fp32", "auto"] if args.precision == "both" else [args.precision]
    paths = [(name, resolve_precision(name, cpu)) for name in names]
    if args.precision == "both" and paths[1][1] is None:
        log("--precision auto is fp32 on this machine (no AMX): measuring the fp32 path only")
        paths = paths[:1]
    return paths


def precision_label(name: str, dtype: torch.dtype | None) -> str:
    """'fp32' or 'auto (bfloat16)'."""
    resolved = "fp32" if dtype is None else str(dtype).replace("torch.", "")
    return name if name == resolved else f"{name} ({resolved})"


def corpus_path(args: argparse.Namespace) -> Path:
    """The corpus to benchmark on, or exit with a one-line message."""
    if args.corpus is not None:
        if not args.corpus.is_file():
            sys.exit(f"error: corpus {args.corpus} does not exist")
        return args.corpus
    from charrnn.corpora import find_corpus_file

    path = find_corpus_file("tinyshakespeare.txt")
    if path is None:
        sys.exit("error: tinyshakespeare.txt not found in the corpus folders; "
                 "run `charrnn corpus download tinyshakespeare` or pass --corpus PATH")
    return path


def charrnn_command() -> list[str]:
    """The installed `charrnn` script, or `python -m charrnn` where it is not on PATH."""
    exe = shutil.which("charrnn")
    return [exe] if exe else [sys.executable, "-m", "charrnn"]


def bench_env(cache_dir: Path) -> dict[str, str]:
    """The environment for a charrnn child: its token-file cache in a temporary folder, so a run
    never reuses (or leaves behind) anything of the user's."""
    return {**os.environ, "CHARRNN_CACHE": str(cache_dir)}


def run_charrnn(args: list[str], cache_dir: Path | None = None) -> tuple[dict, float]:
    """Run `charrnn ARGS` (which must include --json) as a child, as a user would: its JSON result
    and its wall-clock seconds. A failure stops the bench with the command and the end of its
    stderr (its one-line error), not a CalledProcessError that hides it."""
    cmd = [*charrnn_command(), *args]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=bench_env(cache_dir) if cache_dir else None, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout), seconds


# -- timing and memory -------------------------------------------------------------------------


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Run cmd to completion (its stdout discarded) and return (wall seconds, peak RSS in MiB).

    os.wait4 on the child's pid gives that child's own rusage; RUSAGE_CHILDREN would instead report
    the largest of all children this process has ever waited for."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
    if child.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, cmd))} exited with {child.returncode}")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def wall_time(cmd: list[str], env: dict | None = None) -> float:
    """Seconds cmd takes to run (its output discarded)."""
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


# -- the corpus as characters, for the baselines -------------------------------------------------


QUICK_CHARS = 50_000  # --quick trains on this first slice of the corpus


def bench_corpus(args: argparse.Namespace, work: Path) -> tuple[Path, torch.Tensor, list[str], str]:
    """The corpus a training bench runs on (with --quick, its first QUICK_CHARS characters, copied
    into work so that every row also evaluates quickly), its character ids and vocabulary, and how
    the tables name it."""
    corpus = corpus_path(args)
    label = f"the first {QUICK_CHARS:,} chars of {corpus.name}" if args.quick else corpus.name
    if args.quick:
        sliced = work / "slice.txt"
        sliced.write_text(corpus.read_text(encoding="utf-8")[:QUICK_CHARS], encoding="utf-8")
        corpus = sliced
    ids, chars = encode_corpus(corpus)
    return corpus, ids, chars, label


def encode_corpus(path: Path, limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """The corpus (its first `limit` characters) as a 1-D tensor of character ids, and the
    vocabulary (sorted distinct characters)."""
    text = path.read_text(encoding="utf-8")[:limit]
    chars = sorted(set(text))
    index = {ch: i for i, ch in enumerate(chars)}
    ids = torch.tensor([index[ch] for ch in text], dtype=torch.long)
    return ids, chars


def split(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation): validation is the last VAL_FRAC of the characters, rounded exactly as
    charrnn rounds (charrnn.data.split_point), so every row scores the same characters."""
    val_start = len(ids) - int(round(len(ids) * VAL_FRAC))
    return ids[:val_start], ids[val_start:]


# -- the shared validation protocol --------------------------------------------------------------
# Every character of the validation split after its first is scored once, given only the
# validation text before it (as charrnn's own evaluation does): mean cross-entropy in nats/char.


@torch.no_grad()
def evaluate_recurrent(step, val: torch.Tensor, streams: int = 16, window: int = 256) -> float:
    """step(x (B, T), state) -> (logits (B, T, V), state); state None means zeros.

    The split is cut into `streams` contiguous streams read side by side, `window` characters at
    a time, with the state carried from one window to the next. The last stream is padded; padded
    targets are ignored, so every character counts exactly once. val may also be (N, K): the
    character ids in its first column and what goes with each (a conditional model's labels) in
    the others; step then gets x (B, T, K), and the targets are the first column's."""
    x, y = val[:-1], val[1:] if val.dim() == 1 else val[1:, 0]
    stream_len = math.ceil(len(x) / streams)
    pad = streams * stream_len - len(x)
    x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))]).view(streams, stream_len, *x.shape[1:])
    y = torch.cat([y, y.new_full((pad,), -100)]).view(streams, stream_len)  # -100: ignored
    total, state = 0.0, None
    for p in range(0, stream_len, window):
        logits, state = step(x[:, p : p + window], state)
        total += float(F.cross_entropy(logits.float().flatten(0, 1), y[:, p : p + window].flatten(), reduction="sum"))
    return total / (len(val) - 1)


@torch.no_grad()
def evaluate_windowed(forward, val: torch.Tensor, block: int, batch: int = 64) -> float:
    """forward(x (B, block)) -> logits (B, block, V), for a model with a fixed context.

    Windows slide by block/2 and each scores only the positions no earlier window scored (the
    first window all of its own, later ones their second half), so every scored position past
    the first window has at least half a block of context."""
    x, y = val[:-1], val[1:]
    n = len(x)
    if n <= block:
        starts = [0]
        block = n
    else:
        half = block // 2
        starts = list(range(0, n - block + 1, half))
        if starts[-1] + block < n:
            starts.append(n - block)  # a last window flush with the end
    # For each window, the first position (within it) that it scores.
    firsts, covered = [], 0
    for s in starts:
        firsts.append(covered - s)
        covered = s + block
    positions = torch.arange(block)
    total = 0.0
    for i in range(0, len(starts), batch):
        begin = torch.tensor(starts[i : i + batch])[:, None] + positions  # (B, block)
        logits = forward(x[begin])
        targets = y[begin].masked_fill(positions < torch.tensor(firsts[i : i + batch])[:, None], -100)
        total += float(F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum"))
    return total / n


# -- output --------------------------------------------------------------------------------------


def print_table(headers: list[str], rows: list[list], title: str | None = None) -> None:
    """A Markdown table on stdout; numbers are formatted by the caller."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    if title:
        print(f"### {title}\n")
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print(line(row))
    print(flush=True)
