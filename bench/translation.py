"""Translation quality and speed of trained translator checkpoints on their held-out test pairs:
BLEU and chrF (sacrebleu), greedy and beam search, and sentences per second with batch decoding,
beside the same greedy search run one sentence at a time. Every source is also given as people
type it (lower-cased, no final punctuation), read as typed and through charrnn's normalisation
(normalise.as_written_sentence, with the casing the checkpoint learnt), with and without n-gram
blocking; "looping" counts the outputs in which a 3-gram of words occurs more than twice. Give
the attention model and the equal-budget model without attention to see what attention buys.

    charrnn translate train spa-eng.tsv.gz --time-budget 3600 --run-dir runs/attention
    charrnn translate train spa-eng.tsv.gz --time-budget 3600 --attention none --run-dir runs/plain
    python bench/translation.py runs/attention/best.pt runs/plain/best.pt [--beam 5] [--limit N]

Settings are chosen with --split dev (the pairs that also chose the checkpoint), never on test.
"""

from __future__ import annotations

import time
from pathlib import Path

from common import log, make_parser, print_table, set_threads

from charrnn.normalise import FINAL_PUNCTUATION

UNBATCHED_SENTENCES = 200  # the one-at-a-time baseline is slow; its rate needs no more


def describe(checkpoint) -> str:
    cfg = checkpoint.metadata["model_config"]
    tokens = checkpoint.metadata["data_config"]["tokenizer"]
    return (f"{cfg['cell'].upper()} {cfg['encoder_layers']}+{cfg['decoder_layers']}x{cfg['hidden_size']}, {tokens}, "
            f"attention {cfg['attention']}")


def as_people_type_it(sentence: str) -> str:
    """A Tatoeba source as it is typed into a shell: lower-cased, without its final punctuation."""
    return sentence.lower().rstrip().rstrip(FINAL_PUNCTUATION).rstrip()


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="translator checkpoints to compare")
    parser.add_argument("--beam", type=int, default=5, help="beam size beside greedy [default: 5]")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test pairs [default: all; 200 with --quick]")
    parser.add_argument("--split", choices=("test", "dev"), default="test",
                        help="held-out pairs to score [default: test]; choose settings on dev")
    parser.add_argument("--no-repeat", type=lambda text: [int(n) for n in text.split(",")], default=None,
                        help="n-gram sizes to block, comma-separated; 0 is no blocking [default: 0 and charrnn's]")
    args = parser.parse_args()
    set_threads(args.threads)
    from charrnn.translate.task import (TranslationDataConfig, default_no_repeat_ngram, evaluate_translations,
                                         held_out_pairs, load_translator, translate)

    limit = args.limit or (200 if args.quick else None)
    quality, speed = [], []
    for path in args.checkpoints:
        model, source_vocab, target_vocab, saved = load_translator(path, device="cpu")
        pairs = held_out_pairs(saved, split=args.split)[:limit]
        name = describe(saved)
        trained = saved.train_state.get("elapsed", 0.0)
        log(f"{path}: {name}, {len(pairs)} {args.split} pairs")
        typed = [(as_people_type_it(source), target) for source, target in pairs]
        casing = TranslationDataConfig.from_checkpoint(saved).source_casing
        default_ngram = default_no_repeat_ngram(target_vocab)
        blocking = args.no_repeat or sorted({0, default_ngram})
        variants = [("as written", pairs, False), ("typed", typed, False), ("typed, normalised", typed, True)]
        for sources, variant_pairs, normalise in variants:
            for ngram in blocking:
                results = evaluate_translations(model, source_vocab, target_vocab, variant_pairs, beams=(1, args.beam),
                                                no_repeat_ngram=ngram, normalise=normalise, casing=casing)
                for result in results:
                    quality.append([str(path), name, f"{trained / 60:.0f} min", sources, result.decoding,
                                    str(ngram or "off"), f"{result.bleu:.1f}", f"{result.chrf:.1f}", f"{result.looping:,}"])
                    if sources == "as written" and ngram == default_ngram:
                        speed.append([str(path), name, result.decoding, "64", f"{len(pairs):,}",
                                      f"{result.sentences_per_second:,.0f}"])
        sources = [s for s, _ in pairs[:UNBATCHED_SENTENCES]]
        start = time.perf_counter()
        translate(model, source_vocab, target_vocab, sources, beam=1, batch_size=1)
        rate = len(sources) / (time.perf_counter() - start)
        speed.append([str(path), name, "greedy", "1 (one at a time)", f"{len(sources):,}", f"{rate:,.0f}"])
    print_table(["checkpoint", "model", "trained", "sources", "decoding", "no-repeat n-gram", "BLEU", "chrF", "looping"],
                quality, title=f"Translation quality on the held-out {args.split} pairs (sources never seen in training; "
                               f"one reference each)")
    print_table(["checkpoint", "model", "decoding", "batch", "sentences", "sentences/s"], speed,
                title=f"Translation speed on the test sources (CPU, {args.threads} threads)")


if __name__ == "__main__":
    main()
