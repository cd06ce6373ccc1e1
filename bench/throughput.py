"""Training speed (characters per second) of charrnn's own loop against a bare PyTorch loop of exactly
the same shape and precision: embedding + nn.LSTM + linear head, AdamW, gradient clipping, the same
batch, window and autocast dtype, the same number of steps. The gap is charrnn's overhead.

    python bench/throughput.py [--steps 100] [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from common import corpus_path, encode_corpus, log, make_parser, print_table, set_threads

from charrnn.devices import autocast, resolve_precision
from charrnn.tasks.language import LanguageDataConfig, train_language_model
from charrnn.train import TrainConfig

BATCH, SEQ_LEN = 64, 128  # charrnn's defaults
WARMUP = 5  # steps left out of the timing: the first steps set up kernels and optimiser state


def chars_per_second(step_times: list[float], steps: int) -> float:
    """step_times[k] is the time after step k + 1; time steps WARMUP+1 .. steps."""
    return (steps - WARMUP) * BATCH * SEQ_LEN / (step_times[steps - 1] - step_times[WARMUP - 1])


def run_charrnn(corpus: Path, hidden: int, layers: int, steps: int, work: Path) -> float:
    times = []
    on_event = lambda e: times.append(e["elapsed"]) if e["event"] == "step" else None  # noqa: E731
    # eval_every past the last step: no evaluation inside the timed steps. A small validation
    # split keeps the one evaluation at the end short.
    train_language_model(str(corpus), model_config={"hidden_size": hidden, "num_layers": layers},
                         data=LanguageDataConfig(batch_size=BATCH, seq_len=SEQ_LEN, val_frac=0.01),
                         train=TrainConfig(max_steps=steps, eval_every=steps + 1),
                         run_dir=work / "run", cache_dir=work / "cache", overwrite=True, on_event=on_event)
    return chars_per_second(times, steps)


class BareModel(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, layers: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)


def run_bare(streams: torch.Tensor, vocab_size: int, hidden: int, layers: int, steps: int, dtype) -> float:
    """streams: (BATCH, L) token ids, read SEQ_LEN at a time with the state carried, as charrnn reads."""
    device = torch.device("cpu")
    model = BareModel(vocab_size, hidden, layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.99), weight_decay=0.1)
    state, times, start = None, [], time.perf_counter()
    for step in range(steps):
        p = step * SEQ_LEN % (streams.shape[1] - SEQ_LEN - 1)
        x, y = streams[:, p : p + SEQ_LEN], streams[:, p + 1 : p + SEQ_LEN + 1]
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
    return chars_per_second(times, steps)


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--steps", type=int, default=None, help="steps a run [default: 100; 15 with --quick]")
    args = parser.parse_args()
    steps = args.steps or (15 if args.quick else 100)
    if steps <= WARMUP + 1:
        parser.error(f"--steps must be more than {WARMUP + 1}")
    set_threads(args.threads)
    corpus = corpus_path(args)
    dtype = resolve_precision("auto", torch.device("cpu"))
    precision = "fp32" if dtype is None else str(dtype).replace("torch.", "")
    ids, chars = encode_corpus(corpus)
    stream_len = len(ids) // BATCH
    streams = ids[: BATCH * stream_len].view(BATCH, stream_len)  # (B, L), made before timing
    shapes = [(256, 2)] if args.quick else [(256, 2), (512, 2)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as tmp:
        for hidden, layers in shapes:
            ours, bare = [], []
            for attempt in range(2):  # alternate, so drift in the machine's speed hits both alike
                ours.append(run_charrnn(corpus, hidden, layers, steps, Path(tmp)))
                bare.append(run_bare(streams, len(chars), hidden, layers, steps, dtype))
                log(f"{layers}x{hidden} run {attempt + 1}: charrnn {ours[-1]:,.0f} chars/s, bare {bare[-1]:,.0f} chars/s")
            rows.append([f"LSTM {layers}x{hidden}", precision, f"{max(ours):,.0f}", f"{max(bare):,.0f}",
                         f"{max(ours) / max(bare):.2f}"])
    print_table(["shape", "precision", "charrnn chars/s", "bare chars/s", "ratio (target >= 0.90)"], rows,
                title=f"Training throughput: batch {BATCH} x {SEQ_LEN}, {steps} steps a run ({WARMUP} untimed), best of 2")


if __name__ == "__main__":
    main()
