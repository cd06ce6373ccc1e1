"""Validation loss reached in the same wall-clock budget by `charrnn train` (the real CLI, default
settings), a bare PyTorch LSTM loop as a typical user writes it, a tuned stateful truncated-BPTT
loop, and a small nanoGPT-style transformer (their CPU recipe), run one after another, on each
precision path: fp32 (forced) and auto (bf16 where the CPU has AMX). Every row uses the same
validation protocol.

    python bench/time_to_quality.py [--budget 100] [--precision both|fp32|auto] [--only-charrnn] [--quick]
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from common import (LN2, bench_corpus, bench_env, charrnn_command, evaluate_recurrent,
                    evaluate_windowed, log, make_parser, precision_label, precision_paths, print_table, set_threads,
                    split)

from charrnn.devices import autocast

CPU = torch.device("cpu")



def update(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip: float) -> None:
    """One optimiser step on the loss, with the gradient norm clipped."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()


def baseline_row(name: str, model: nn.Module, steps: int, chars_per_step: int, elapsed: float, val_loss: float) -> dict:
    return {"model": name, "parameters": sum(p.numel() for p in model.parameters()), "steps": steps,
            "chars_per_s": steps * chars_per_step / elapsed, "val_loss": val_loss}


def random_windows(train: torch.Tensor, batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` random windows of the training split: inputs and next-character targets (B, length)."""
    starts = torch.randint(0, len(train) - length - 1, (batch, 1))
    window = train[starts + torch.arange(length + 1)]  # (B, length + 1)
    return window[:, :-1], window[:, 1:]


# -- (a) charrnn, through its command line --------------------------------------------------------


def run_charrnn(corpus: Path, budget: float, work: Path, val: torch.Tensor, chars: list[str], precision: str) -> dict:
    run_dir = work / f"charrnn-run-{precision}"
    cmd = charrnn_command() + ["train", str(corpus), "--time-budget", str(budget), "--run-dir", str(run_dir),
                               "--precision", precision, "-q"]
    log(f"charrnn: {' '.join(cmd)}")
    subprocess.run(cmd, env=bench_env(work / "cache"), check=True, stdout=subprocess.DEVNULL)
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["event"] == "start")
    last_step = [e for e in events if e["event"] == "step"][-1]
    end = next(e for e in events if e["event"] == "end")
    # best.pt is the model a user keeps. It is scored here by the same fp32 protocol as the
    # baselines, not by charrnn's own (bf16) evaluation, so that no row grades itself.
    from charrnn.language.task import load_language_model

    model, vocab, _ = load_language_model(run_dir / "best.pt", device="cpu")
    assert [vocab.decode([i]) for i in range(vocab.size)] == chars, "charrnn's ids differ from the baselines'"
    val_loss = evaluate_recurrent(lambda x, state: model(x, state)[:2], val)
    log(f"  charrnn's own evaluation: {end['best_val_loss']:.4f} nats/char; shared protocol: {val_loss:.4f}; "
        f"elapsed {end['elapsed']:.1f} s")
    settings = start.get("settings") or {}
    shape = f"{settings['batch_size']}x{settings['seq_len']}, lr {settings['learning_rate']:.2g}" if settings else "given"
    return {"model": f"charrnn train (LSTM 2x256, defaults: {shape})", "parameters": start["parameters"],
            "steps": end["step"], "chars_per_s": last_step["tokens"] / last_step["elapsed"],
            "val_loss": val_loss}


# -- (b) a bare LSTM loop, as a typical user writes it ----------------------------------------------


class CharLSTM(nn.Module):
    def __init__(self, vocab_size: int, size: int = 256, layers: int = 2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, size)
        self.lstm = nn.LSTM(size, size, layers, batch_first=True)
        self.head = nn.Linear(size, vocab_size)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embedding(x), state)
        return self.head(out), state


def run_bare_lstm(train: torch.Tensor, val: torch.Tensor, vocab_size: int, budget: float, dtype) -> dict:
    torch.manual_seed(0)
    model = CharLSTM(vocab_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        x, y = random_windows(train, 64, 128)
        with autocast(CPU, dtype):
            logits, _ = model(x)  # a fresh zero state for every batch
        update(model, optimizer, F.cross_entropy(logits.float().flatten(0, 1), y.flatten()), clip=5.0)
        steps += 1
    elapsed = time.perf_counter() - start
    model.eval()
    return baseline_row("bare nn.LSTM 2x256 (Adam 2e-3, 64x128)", model, steps, 64 * 128, elapsed,
                        evaluate_recurrent(model, val))


# -- (c) a tuned stateful truncated-BPTT loop -------------------------------------------------------


def run_tbptt_loop(train: torch.Tensor, val: torch.Tensor, vocab_size: int, budget: float, dtype) -> dict:
    """The short loop a practised user writes: 64 contiguous streams read 64 characters at a time
    with the state carried (and detached), AdamW at 4e-3 with cosine decay over the budget, one
    evaluation at the end."""
    torch.manual_seed(0)
    batch, length, peak = 64, 64, 4e-3
    model = CharLSTM(vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak, weight_decay=0.1, betas=(0.9, 0.99))
    stream_len = len(train) // batch
    streams = train[: batch * stream_len].view(batch, stream_len)  # (B, L)
    steps, position, state, start = 0, 0, None, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        for group in optimizer.param_groups:
            group["lr"] = peak * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        if position + length + 1 > stream_len:
            position, state = 0, None
        x, y = streams[:, position : position + length], streams[:, position + 1 : position + length + 1]
        position += length
        with autocast(CPU, dtype):
            logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        update(model, optimizer, F.cross_entropy(logits.float().flatten(0, 1), y.flatten()), clip=1.0)
        steps += 1
    elapsed = time.perf_counter() - start
    model.eval()
    return baseline_row("stateful TBPTT loop 2x256 (AdamW 4e-3 cosine, 64x64)", model, steps, batch * length, elapsed,
                        evaluate_recurrent(model, val))


# -- (d) a nanoGPT-style transformer (their shakespeare_char CPU recipe) -----------------------------


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a 4x GELU MLP; no biases."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, bias=False)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        self.norm2 = nn.LayerNorm(width, bias=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width, bias=False), nn.GELU(), nn.Linear(4 * width, width, bias=False))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in self.qkv(self.norm1(x)).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, T, C / heads)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.norm2(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab_size: int, block: int = 64, width: int = 128, layers: int = 4, heads: int = 4):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, width)
        self.positions = nn.Embedding(block, width)
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(width, bias=False)
        self.head = nn.Linear(width, vocab_size, bias=False)
        self.head.weight = self.tokens.weight  # tied input and output embeddings, as GPT-2 does
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, x):  # (B, T) -> (B, T, V)
        h = self.tokens(x) + self.positions(torch.arange(x.shape[1]))
        return self.head(self.norm(self.blocks(h)))


def run_transformer(train: torch.Tensor, val: torch.Tensor, vocab_size: int, budget: float, dtype) -> dict:
    torch.manual_seed(0)
    block, peak, floor, warmup = 64, 1e-3, 1e-4, 100
    model = TinyGPT(vocab_size, block)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}],
                                  lr=peak, betas=(0.9, 0.99))
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        # Their recipe: 100 warm-up steps, then cosine decay to 1e-4 over the run; the run's
        # length here is the budget, so the decay follows the elapsed fraction of it.
        if steps < warmup:
            lr = peak * (steps + 1) / warmup
        else:
            lr = floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = random_windows(train, 12, block)
        with autocast(CPU, dtype):
            logits = model(x)
        update(model, optimizer, F.cross_entropy(logits.float().flatten(0, 1), y.flatten()), clip=1.0)
        steps += 1
    elapsed = time.perf_counter() - start
    model.eval()
    # Tied weights count once. (nanoGPT prints 0.80M for this recipe: it leaves out the positions.)
    return baseline_row("nanoGPT-style transformer 4x4x128, block 64", model, steps, 12 * block, elapsed,
                        evaluate_windowed(model, val, block))


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--budget", type=float, default=None, help="seconds of training per row [default: 100; 5 with --quick]")
    parser.add_argument("--only-charrnn", action="store_true", help="no baseline rows (for long budgets, whose target is absolute)")
    args = parser.parse_args()
    budget = args.budget or (5.0 if args.quick else 100.0)
    set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as tmp:
        work = Path(tmp)
        corpus, ids, chars, label = bench_corpus(args, work)
        train, val = split(ids)
        log(f"corpus {corpus}: {len(ids):,} chars, vocabulary {len(chars)}, validation {len(val):,}; budget {budget:g} s a row")
        for precision, dtype in precision_paths(args):
            runs = [("charrnn", lambda: run_charrnn(corpus, budget, work, val, chars, precision))]
            if not args.only_charrnn:
                runs += [("bare LSTM", lambda: run_bare_lstm(train, val, len(chars), budget, dtype)),
                         ("TBPTT loop", lambda: run_tbptt_loop(train, val, len(chars), budget, dtype)),
                         ("transformer", lambda: run_transformer(train, val, len(chars), budget, dtype))]
            rows, losses = [], []
            for name, run in runs:
                log(f"training {name} for {budget:g} s, precision {precision_label(precision, dtype)}")
                result = run()
                log(f"  {result['steps']} steps, val {result['val_loss']:.4f} nats/char")
                losses.append(result["val_loss"])
                rows.append([result["model"], f"{result['parameters']:,}", result["steps"], f"{result['chars_per_s']:,.0f}",
                             f"{result['val_loss']:.3f}", f"{result['val_loss'] / LN2:.3f}"])
            if len(losses) > 1:
                log(f"charrnn against the best baseline: {losses[0] - min(losses[1:]):+.3f} nats/char")
            print_table(["model", "parameters", "steps", "chars/s trained", "val nats/char", "val bpc"], rows,
                        title=f"Time to quality: {budget:g} s of training each, precision {precision_label(precision, dtype)}, "
                              f"validation = last 10% of {label}")


if __name__ == "__main__":
    main()
