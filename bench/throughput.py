"""Training speed (characters per second) of charrnn's own loop against a bare PyTorch loop of exactly
the same shape and precision: embedding + nn.LSTM + linear head, AdamW, gradient clipping, the same
batch, window and autocast dtype, the same number of steps. The gap is charrnn's overhead. Measured
at the small batches charrnn's defaults choose for a short run on a CPU (8 x 64 in fp32, 32 x 64 in
bf16 on the development machine; there a step's fixed costs weigh most) and at 64 x 128, on each
precision path.

Every run is a fresh child process, as each `charrnn train` is: charrnn keeps freed memory for
reuse (charrnn/allocator.py), a process-wide setting the bare loop must not inherit, and the
bare loop's speed without it varies from process to process (25,500 to 33,500 chars/s at 8 x 64
in fp32), so each of its runs gets a process of its own too. (A child kept alive between runs
slowed the other process's steps fourfold.)

    python bench/throughput.py [--steps 100] [--precision both|fp32|auto] [--quick]
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from common import (corpus_path, encode_corpus, log, make_parser, precision_label, precision_paths, print_table,
                    set_threads)

from charrnn.devices import autocast
from charrnn.events import StepEvent
from charrnn.language.task import LanguageDataConfig, train_language_model
from charrnn.train import TrainConfig

# (hidden size, layers, batch, window)
SHAPES = [(256, 2, 8, 64), (256, 2, 32, 64), (256, 2, 64, 128), (512, 2, 64, 128)]
WARMUP = 5  # steps left out of the timing: the first steps set up kernels and optimiser state


def chars_per_second(step_times: list[float], steps: int, batch: int, seq_len: int) -> float:
    """step_times[k] is the time after step k + 1; time steps WARMUP+1 .. steps."""
    return (steps - WARMUP) * batch * seq_len / (step_times[steps - 1] - step_times[WARMUP - 1])


def run_charrnn(corpus: Path, shape: tuple, steps: int, work: Path, precision: str) -> float:
    hidden, layers, batch, seq_len = shape
    times = []
    on_event = lambda e: times.append(e.elapsed) if isinstance(e, StepEvent) else None  # noqa: E731
    # Every setting given, so nothing is timed before the run; eval_every past the last step: no
    # evaluation inside the timed steps. A small validation split keeps the one at the end short.
    train_language_model(str(corpus), model_config={"hidden_size": hidden, "num_layers": layers, "dropout": 0.0},
                         data=LanguageDataConfig(batch_size=batch, seq_len=seq_len, val_frac=0.01),
                         train=TrainConfig(max_steps=steps, learning_rate=3e-3, warmup_steps=10, eval_every=steps + 1,
                                           weight_decay=0.1),
                         run_dir=work / "run", cache_dir=work / "cache", overwrite=True, on_event=on_event,
                         precision=precision)
    return chars_per_second(times, steps, batch, seq_len)


class BareModel(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, layers: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)


def run_bare(ids: torch.Tensor, vocab_size: int, shape: tuple, steps: int, dtype) -> float:
    """ids read as `batch` streams, seq_len at a time with the state carried, as charrnn reads."""
    hidden, layers, batch, seq_len = shape
    device = torch.device("cpu")
    stream_len = len(ids) // batch
    streams = ids[: batch * stream_len].view(batch, stream_len)  # (B, L), made before timing
    model = BareModel(vocab_size, hidden, layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.99), weight_decay=0.1)
    state, times, start = None, [], time.perf_counter()
    for step in range(steps):
        p = step * seq_len % (streams.shape[1] - seq_len - 1)
        x, y = streams[:, p : p + seq_len], streams[:, p + 1 : p + seq_len + 1]
        with autocast(device, dtype):
            out, state = model.lstm(model.embedding(x), state)
            logits = model.head(out)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        state = tuple(s.detach() for s in state)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()  # charrnn reads the loss every step too
        times.append(time.perf_counter() - start)
    return chars_per_second(times, steps, batch, seq_len)


def in_fresh_process(threads: int, function, *args):
    """function(*args) in a new Python process with `threads` torch threads, which then exits."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=set_threads,
                             initargs=(threads,)) as child:
        return child.submit(function, *args).result()


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--steps", type=int, default=None, help="steps a run [default: 100; 15 with --quick]")
    args = parser.parse_args()
    steps = args.steps or (15 if args.quick else 100)
    if steps <= WARMUP + 1:
        parser.error(f"--steps must be more than {WARMUP + 1}")
    set_threads(args.threads)
    corpus = corpus_path(args)
    ids, chars = encode_corpus(corpus)
    shapes = SHAPES[:1] if args.quick else SHAPES
    rows = []
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as tmp:
        for precision, dtype in precision_paths(args):
            for shape in shapes:
                hidden, layers, batch, seq_len = shape
                ours, bare = [], []
                for attempt in range(2):  # alternate, so drift in the machine's speed hits both alike
                    ours.append(in_fresh_process(args.threads, run_charrnn, corpus, shape, steps, Path(tmp), precision))
                    bare.append(in_fresh_process(args.threads, run_bare, ids, len(chars), shape, steps, dtype))
                    log(f"{precision} {layers}x{hidden} {batch}x{seq_len} run {attempt + 1}: charrnn {ours[-1]:,.0f} chars/s, "
                        f"bare {bare[-1]:,.0f} chars/s")
                rows.append([f"LSTM {layers}x{hidden}", f"{batch} x {seq_len}", precision_label(precision, dtype),
                             f"{max(ours):,.0f}", f"{max(bare):,.0f}", f"{max(ours) / max(bare):.2f}"])
    print_table(["model", "batch", "precision", "charrnn chars/s", "bare chars/s", "ratio (target >= 0.90)"], rows,
                title=f"Training throughput: {steps} steps a run ({WARMUP} untimed), best of 2")


if __name__ == "__main__":
    main()
