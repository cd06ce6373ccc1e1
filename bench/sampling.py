"""Generation speed (characters per second, batch 1, temperature 0.8) of charrnn's `generate` against
the naive loop tutorials write: one call each to the embedding, the nn.LSTM and the head per token,
then softmax, torch.multinomial and .item(). Random weights: speed does not depend on them.

    python bench/sampling.py [--tokens 4000] [--quick]
"""

from __future__ import annotations

import time

import torch

from common import log, make_parser, print_table, set_threads

from charrnn.language.model import LanguageModel, LanguageModelConfig
from charrnn.language.sampling import SamplingConfig, generate

VOCAB = 65  # tinyshakespeare's
TEMPERATURE = 0.8


def time_charrnn(model: LanguageModel, tokens: int) -> float:
    generator = torch.Generator().manual_seed(1)
    start = time.perf_counter()
    for _ in generate(model, [0], tokens, SamplingConfig(temperature=TEMPERATURE), generator):
        pass
    return tokens / (time.perf_counter() - start)


def time_naive(model: LanguageModel, tokens: int) -> float:
    generator = torch.Generator().manual_seed(1)
    start = time.perf_counter()
    with torch.inference_mode():
        token, state = 0, None
        for _ in range(tokens):
            x = model.embedding(torch.tensor([[token]]))  # (1, 1, E)
            out, state = model.recurrent.rnn(x, state)  # (1, 1, H)
            logits = model.head(out[:, -1])  # (1, V)
            probs = torch.softmax(logits / TEMPERATURE, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).item()
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--tokens", type=int, default=None, help="tokens a timed run [default: 4000; 1000 with --quick]")
    args = parser.parse_args()  # --corpus is accepted for run_all.py's sake, and unused
    tokens = args.tokens or (1000 if args.quick else 4000)
    set_threads(args.threads)
    torch.manual_seed(0)
    shapes = [(256, 2)] if args.quick else [(256, 2), (512, 2)]
    rows = []
    for hidden, layers in shapes:
        model = LanguageModel(LanguageModelConfig(VOCAB, hidden_size=hidden, num_layers=layers)).eval()
        # Warm-up: the first few hundred steps of the naive loop are slow (oneDNN sets up its
        # kernels), and would count against it.
        time_naive(model, 300)
        time_charrnn(model, 300)
        ours, naive = [], []
        for attempt in range(2):  # alternate, so drift in the machine's speed hits both alike
            ours.append(time_charrnn(model, tokens))
            naive.append(time_naive(model, tokens))
            log(f"{layers}x{hidden} run {attempt + 1}: charrnn {ours[-1]:,.0f} chars/s, naive {naive[-1]:,.0f} chars/s")
        rows.append([f"LSTM {layers}x{hidden}", f"{max(ours):,.0f}", f"{max(naive):,.0f}", f"{max(ours) / max(naive):.1f}x"])
    print_table(["model", "charrnn chars/s", "naive chars/s", "ratio"], rows,
                title=f"Sampling speed: batch 1, fp32, temperature {TEMPERATURE}, {tokens} tokens a run, best of 2 "
                      "(targets: 2x256 >= 10,000 chars/s and >= 5x the naive loop; 2x512 >= 3,000 chars/s)")


if __name__ == "__main__":
    main()
