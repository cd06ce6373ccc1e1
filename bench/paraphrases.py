"""Paraphrase retrieval with sentence vectors: Tatoeba's English sentences that share a Spanish
translation are paraphrases ("I'm hungry." / "I am hungry."). Queries are the held-out sentences
of an autoencoder run (spa-eng.tsv.gz split as `charrnn autoencode train` splits it; the dev part
to choose settings with, the test part to report) that have a paraphrase; the pool is every
query's paraphrases plus the other held-out sentences of that part. A
query scores when its nearest pool sentence by cosine similarity (itself left out) is one of its
paraphrases: top-1 accuracy, for each encoder beside a bag-of-words TF-IDF baseline (word 1- and
2-grams, scikit-learn) in the same run.

    python bench/paraphrases.py -c RUN [-c RUN2 ...] [--part dev|test] [--encoders sentiment spa-eng] [--quick]

The bundled translator (spa-eng) trained on the same pairs, the test sentences' Spanish sides
included; its figure says what an encoder trained to carry meaning gets, not a held-out score."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from common import log, print_table

from charrnn.autoencode.task import AutoencoderDataConfig, load_autoencoder, read_sentences, sentence_vectors, split_sentences
from charrnn.checkpoint import checkpoint_file, load_checkpoint
from charrnn.corpora import find_corpus_file
from charrnn.embedding import load_embedder
from charrnn.translate.pairs import read_pairs


def paraphrase_groups(pairs) -> dict[str, set[str]]:
    """Each English sentence's paraphrases: the other English sentences of its Spanish translations."""
    by_translation: dict[str, set[str]] = defaultdict(set)
    for english, spanish in pairs:
        by_translation[spanish].add(english)
    paraphrases: dict[str, set[str]] = defaultdict(set)
    for group in by_translation.values():
        for sentence in group:
            paraphrases[sentence] |= group - {sentence}
    return paraphrases


def top1(vectors: np.ndarray, queries: list[int], relevant: list[set[int]]) -> float:
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    hits = 0
    for query, wanted in zip(queries, relevant):
        similarities = unit @ unit[query]
        similarities[query] = -np.inf
        hits += int(int(np.argmax(similarities)) in wanted)
    return hits / len(queries)


def tfidf_vectors(sentences: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(sentences).toarray()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("-c", "--checkpoint", action="append", default=[], help="an autoencoder run or checkpoint (repeatable)")
    parser.add_argument("--encoders", nargs="*", default=["sentiment", "spa-eng"], help="other encoders to compare")
    parser.add_argument("--pairs", type=Path, default=None, help="spa-eng.tsv.gz [default: from the corpus folders]")
    parser.add_argument("--part", choices=("dev", "test"), default="test",
                        help="the held-out sentences to query: dev (to choose settings) or test (to report) [default: test]")
    parser.add_argument("--quick", action="store_true", help="the first 200 queries only")
    args = parser.parse_args()
    pairs_path = args.pairs or find_corpus_file("spa-eng.tsv.gz")
    if pairs_path is None:
        sys.exit("error: spa-eng.tsv.gz not found; run `charrnn corpus download spa-eng` or pass --pairs")
    data = AutoencoderDataConfig()
    if args.checkpoint:
        data = AutoencoderDataConfig(**load_checkpoint(checkpoint_file(args.checkpoint[0])).metadata["data_config"])
    split = split_sentences(read_sentences(pairs_path, data), data)
    test = [s for s, _ in (split.dev if args.part == "dev" else split.test)]
    paraphrases = paraphrase_groups(read_pairs(pairs_path).pairs)
    queries_text = [s for s in test if paraphrases.get(s)]
    if args.quick:
        queries_text = queries_text[:200]
    pool = list(dict.fromkeys([*test, *(p for s in queries_text for p in sorted(paraphrases[s]))]))
    index = {s: i for i, s in enumerate(pool)}
    queries = [index[s] for s in queries_text]
    relevant = [{index[p] for p in paraphrases[s]} for s in queries_text]
    log(f"{len(queries):,} queries with a paraphrase among {len(test):,} {args.part} sentences; pool {len(pool):,}")
    rows = [["TF-IDF, word 1-2-grams (baseline)", "-", f"{top1(tfidf_vectors(pool), queries, relevant):.1%}"]]
    for name in args.checkpoint:
        # The autoencoder's two vectors: what `charrnn embed` gives (its encoder's states
        # averaged), and the vector the decoder starts from (what interpolation walks).
        model, vocab, _ = load_autoencoder(name, device="cpu")
        bottleneck = sentence_vectors(model, vocab, pool).numpy()
        rows.append([f"{name} (the decoder's start vector)", "autoencoder", f"{top1(bottleneck, queries, relevant):.1%}"])
    for name in [*args.checkpoint, *args.encoders]:
        log(f"embedding with {name}")
        embedder = load_embedder(name, device="cpu")
        label = f"{name} (charrnn embed)" if name in args.checkpoint else name
        rows.append([label, embedder.task, f"{top1(embedder.embed(pool), queries, relevant):.1%}"])
    print_table(["encoder", "task", "top-1 paraphrase retrieval"], rows,
                title=f"Paraphrase retrieval ({args.part} part): {len(queries):,} held-out Tatoeba sentences, "
                      f"a pool of {len(pool):,}")


if __name__ == "__main__":
    main()
