"""Conditional generation on rt-polarity (label = pos or neg, or a vector): does a language model
trained with `--condition` write what it is given, and what does conditioning cost?

Three models train in the same time budget on the same stream of reviews (the same tokens, the
same validation split): unconditioned (`charrnn train` on the texts alone), conditioned at every
token (`--condition label`, the default) and conditioned only at the start of each text
(`--condition-at start`). For each, reviews sampled for each label (temperature 0.8, the default)
are scored by the bundled sentiment classifier: the share it gives the label asked for, sampled
as the model gives them and with `--guidance` (8: chosen on samples of other seeds from a run like
these, where 4, 6, 8 and 12 gave 64%, 78%, 81% and 84%). An unconditioned model cannot know the
label asked for, so its share is 50% by construction; its row shows how it splits its reviews
instead. Losses are nats per character on the runs'
validation split (dev: where settings are chosen) and on a test part of 10% of the reviews (held
out before training, stratified, fixed seed; looked at once). Last, a training step and a
sampling step of a plain and of a conditioned model, timed at the same size.

With `--condition vector` the condition is a vector instead: each review's 256 numbers from the
bundled sentence autoencoder (`charrnn embed -c sentences`), read with `--condition-type vector`
at every token or at the start. A review is then sampled (one line, temperature 0.8) from the
vector of each of --samples test reviews, and embedded in turn: the share of samples whose
nearest source vector (cosine, among those --samples) is their own, where an unconditioned model
scores 1/--samples. The guidance of the second column is chosen among 0, 1, 2 and 4 on reviews of
the run's own validation split (dev), then used once on test.

    python bench/conditional.py [--condition label|vector] [--budget 240] [--guidance 8] [--precision both|fp32|auto] [--samples 200] [--quick]
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import evaluate_recurrent, log, make_parser, precision_label, precision_paths, print_table, run_charrnn, set_threads

from charrnn.classify.task import ClassificationDataConfig, classify, load_classifier
from charrnn.corpora import find_corpus_file
from charrnn.data import split_point
from charrnn.devices import autocast
from charrnn.embedding import load_embedder, nearest
from charrnn.labelled import read_labelled, stratified_split
from charrnn.language.conditions import (StreamConditions, VectorTexts, condition_stream, read_label_column, read_vector_column,
                                         stream_order, stream_text)
from charrnn.language.model import LanguageModel, LanguageModelConfig
from charrnn.language.task import load_language_model, sample_text

KINDS = {  # condition: {name: the options of `charrnn train` beyond the shared ones}
    "label": {
        "unconditioned": [],
        "every token (default)": ["--condition", "label"],
        "start of each text": ["--condition", "label", "--condition-at", "start"],
    },
    "vector": {
        "unconditioned": [],
        "vector, every token (default)": ["--condition", "vector", "--condition-type", "vector"],
        "vector, start of each text": ["--condition", "vector", "--condition-type", "vector", "--condition-at", "start"],
    },
}
TEST_FRAC = 0.1
SPLIT_SEED = 7  # the test part's seed: fixed, so every run of this bench holds out the same reviews
EMBEDDER = "sentences"  # the bundled sentence autoencoder: the vectors of --condition vector
VECTOR_GUIDANCE = (0.0, 1.0, 2.0, 4.0)  # tried on dev for a vector model


def write_data(work: Path, quick: bool) -> tuple[Path, Path, Path]:
    """rt-polarity as train.tsv (text, label and vector columns, header; the runs split off their
    own validation) and test.tsv, and plain.txt: train.tsv's stream without its conditions, for
    the unconditioned model. The vector is each review's embedding by the bundled autoencoder."""
    files = [find_corpus_file(name) for name in ("rt-polarity.pos", "rt-polarity.neg")]
    if None in files:
        sys.exit("error: rt-polarity.pos/.neg not found in the corpus folders; run `charrnn corpus download rt-polarity`")
    reviews = read_labelled(files)
    if quick:
        reviews = reviews.subset(range(0, len(reviews), 10))
    vectors = load_embedder(EMBEDDER, device="cpu").embed(reviews.texts)
    rest, test = stratified_split(reviews.labels, TEST_FRAC, seed=SPLIT_SEED)
    paths = []
    for name, indices in (("train.tsv", rest), ("test.tsv", test)):
        lines = [f"{reviews.texts[i]}\t{reviews.label_names[reviews.labels[i]]}\t{' '.join(f'{v:.4f}' for v in vectors[i])}\n"
                 for i in indices]
        (work / name).write_text("text\tlabel\tvector\n" + "".join(lines), encoding="utf-8")
        paths.append(work / name)
    (work / "plain.txt").write_text(stream_text(read_label_column(paths[0], "label")), encoding="utf-8")
    log(f"rt-polarity: {len(rest):,} reviews to train and validate on, {len(test):,} held out for test")
    return paths[0], paths[1], work / "plain.txt"


def train(work: Path, name: str, options: list[str], data: Path, precision: str, budget: float) -> tuple[Path, dict]:
    run_dir = work / f"run-{'-'.join(re.findall('[a-z]+', name))}-{precision}"
    log(f"training {name} ({precision}, {budget:g} s)")
    outcome, _ = run_charrnn(["train", str(data), *options, "--time-budget", str(budget), "--precision", precision,
                              "--seed", "1337", "--run-dir", str(run_dir), "--quiet", "--json"], work / "cache")
    return run_dir, outcome


def stream_loss(model: LanguageModel, stream: np.ndarray, table: torch.Tensor | None, conditioned: bool) -> float:
    """Nats per token over a (token, condition id) stream by the shared protocol
    (common.evaluate_recurrent), the conditions read only by a conditioned model: a label id, or
    for a vector model, the id's row of table."""
    def step(x, state):
        condition = None
        if conditioned:
            condition = x[..., 1] if table is None else table[x[..., 1]]
        return model(x[..., 0], state, condition=condition)[:2]

    return evaluate_recurrent(step, torch.from_numpy(stream.astype(np.int64)))


def test_stream(test_file: Path, vocab, condition: str, label_names: list[str]) -> tuple[np.ndarray, torch.Tensor | None, int]:
    """The test reviews as a stream in the model's vocabulary and condition ids (with, for vectors,
    the table of each id's vector), leaving out those with a character the training reviews never
    had; and how many were left out."""
    test = read_label_column(test_file, "label", label_names=label_names)
    known = [i for i, text in enumerate(test.texts) if not vocab.unknown_characters(text)]
    if condition == "label":
        return condition_stream(test.subset(known), vocab), None, len(test) - len(known)
    kept = read_vector_column(test_file, "vector").subset(known)
    table = torch.from_numpy(StreamConditions.of(kept).table)
    return condition_stream(kept, vocab), table, len(test) - len(known)


def dev_reviews(train_file: Path, count: int) -> VectorTexts:
    """count reviews from the validation split (dev) of a run on train_file: the last texts of its
    stream, whose newline starts after the split point (default --val-frac 0.1)."""
    data = read_vector_column(train_file, "vector")
    order = stream_order(len(data))
    starts = np.cumsum([0] + [len(data.texts[i]) + 1 for i in order])
    validation = starts[:-1] >= split_point(int(starts[-1]), 0.1)
    return data.subset([i for i, held in zip(order, validation) if held][:count])


def retrieval(model, vocab, embedder, reviews: VectorTexts, guidance: float, conditioned: bool) -> float:
    """The share of reviews whose vector, as the condition of one sampled line, gives a line whose
    embedding is nearest (cosine) to that vector among all of the reviews' vectors."""
    lines = []
    for k, vector in enumerate(reviews.vectors):
        text = "".join(sample_text(model, vocab, length=400, seed=k + 1, condition=vector.tolist() if conditioned else None,
                                   guidance=guidance))
        lines.append(text.split("\n")[0])
    found = nearest(embedder.embed(lines), reviews.vectors, reviews.texts, k=1)  # an empty line finds nothing
    hits = [bool(best) and best[0].line == k + 1 for k, best in enumerate(found)]
    return sum(hits) / len(hits)


def sampled_reviews(model, vocab, count: int, condition: str | None, seed: int, guidance: float = 0.0) -> list[str]:
    """count whole reviews (lines) sampled from the model, at its default temperature."""
    reviews: list[str] = []
    while len(reviews) < count:
        text = "".join(sample_text(model, vocab, length=4000, seed=seed, condition=condition, guidance=guidance))
        seed += 1
        reviews += [line.strip() for line in text.split("\n")[:-1] if line.strip()]  # the last line may be cut off
    return reviews[:count]


def speed_rows(dtype: torch.dtype | None, vocab_size: int, condition: str, quick: bool) -> list[list[str]]:
    """Training-step and sampling-step times of a plain and a conditioned model of the bench's
    default size (2 LSTM layers of 256), at batch 32 x 64 and batch 1."""
    torch.manual_seed(0)
    base = dict(vocab_size=vocab_size, hidden_size=256, num_layers=2)
    plain = LanguageModel(LanguageModelConfig(**base))
    x = torch.randint(vocab_size, (32, 65))
    if condition == "label":
        conditioned = LanguageModel(LanguageModelConfig(**base, conditions=["neg", "pos"]))
        conditions, fixed = torch.randint(1, 3, (32, 64)), "pos"
    else:
        size = 256
        conditioned = LanguageModel(LanguageModelConfig(**base, condition_size=size, condition_mean=[0.0] * size,
                                                        condition_scale=[1.0] * size))
        conditions, fixed = torch.randn(32, 1, size).expand(32, 64, size), [0.5] * size
    repeats = 5 if quick else 25

    def train_step_ms(model, condition):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        times = []
        for _ in range(repeats + 2):
            started = time.perf_counter()
            with autocast(torch.device("cpu"), dtype):
                _, _, loss = model(x[:, :-1], None, targets=x[:, 1:], condition=condition)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times[2:])

    def sample_step_us(stepper):
        token, state = torch.zeros(1, dtype=torch.long), stepper.split_state(plain.init_state(1))
        with torch.inference_mode():
            for _ in range(50):
                _, state = stepper.step(token, state)
            started = time.perf_counter()
            for _ in range(2000):
                _, state = stepper.step(token, state)
        return 1e6 * (time.perf_counter() - started) / 2000

    plain_train, cond_train = train_step_ms(plain, None), train_step_ms(conditioned, conditions)
    plain_sample, cond_sample = sample_step_us(plain.stepper()), sample_step_us(conditioned.with_condition(fixed).stepper())
    return [["training step, batch 32 x 64 (ms)", f"{plain_train:.1f}", f"{cond_train:.1f}", f"{cond_train / plain_train:.2f}x"],
            ["sampling step, batch 1, fp32 (us)", f"{plain_sample:.0f}", f"{cond_sample:.0f}", f"{cond_sample / plain_sample:.2f}x"]]


def label_agreement(model, vocab, judge, samples: int, guidances: tuple[float, ...], conditioned: bool) -> list[str]:
    """Cells of the label table: for each guidance, the share of reviews sampled for each label
    that the classifier (judge: model, vocab, labels, data config) gives that label."""
    cells = []
    classifier, classifier_vocab, classifier_labels, read_as = judge
    for guidance in (guidances if conditioned else (0.0,)):
        split = {}
        for label in ("neg", "pos"):
            reviews = sampled_reviews(model, vocab, samples, label if conditioned else None,
                                      seed=1 if label == "neg" else 10_001, guidance=guidance)
            predicted = [p.label for p in classify(classifier, classifier_vocab, classifier_labels, reviews, data=read_as)]
            split[label] = predicted.count(label) / len(predicted)
        if conditioned:
            cells.append(f"{(split['neg'] + split['pos']) / 2:.1%} (neg {split['neg']:.0%}, pos {split['pos']:.0%})")
        else:
            cells += [f"50% by construction (classified pos: {(1 - split['neg'] + split['pos']) / 2:.0%})", "-"]
    return cells


def vector_retrieval(model, vocab, embedder, dev: VectorTexts, test: VectorTexts, conditioned: bool) -> list[str]:
    """Cells of the vector table: test retrieval without guidance, and with the guidance that
    retrieves best on dev."""
    if not conditioned:
        return [f"{1 / len(test):.1%} by construction", "-"]
    on_dev = {guidance: retrieval(model, vocab, embedder, dev, guidance, True) for guidance in VECTOR_GUIDANCE}
    best = max(on_dev, key=on_dev.get)
    log("dev retrieval by guidance: " + ", ".join(f"{g:g}: {share:.1%}" for g, share in on_dev.items()))
    return [f"{retrieval(model, vocab, embedder, test, 0.0, True):.1%}",
            f"{retrieval(model, vocab, embedder, test, best, True):.1%} (guidance {best:g})"]


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--condition", choices=tuple(KINDS), default="label", help="what the models are conditioned on [default: label]")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds of training per model [default: 240]")
    parser.add_argument("--samples", type=int, default=200, help="reviews sampled per label, or test reviews sampled from [default: 200]")
    parser.add_argument("--guidance", type=float, default=8.0, help="the guidance of the second label-agreement column [default: 8]")
    parser.add_argument("--classifier", default="sentiment", help="the classifier that scores the samples [default: the bundled sentiment]")
    args = parser.parse_args()
    set_threads(args.threads)
    budget, samples = (20.0, 20) if args.quick else (args.budget, args.samples)
    classifier, classifier_vocab, classifier_labels, saved = load_classifier(args.classifier, device="cpu")
    judge = (classifier, classifier_vocab, classifier_labels, ClassificationDataConfig.from_checkpoint(saved))
    embedder = load_embedder(EMBEDDER, device="cpu")
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-conditional-") as tmp:
        work = Path(tmp)
        train_file, test_file, plain_file = write_data(work, args.quick)
        dev = dev_reviews(train_file, samples)
        test_vectors = read_vector_column(test_file, "vector").subset(range(samples))
        for precision, dtype in precision_paths(args):
            rows = []
            vocab_size = None
            for name, options in KINDS[args.condition].items():
                conditioned = bool(options)
                run_dir, outcome = train(work, name, options, train_file if conditioned else plain_file, precision, budget)
                model, vocab, _ = load_language_model(run_dir / "best.pt", device="cpu")
                vocab_size = vocab.size
                stream, table, unknown = test_stream(test_file, vocab, args.condition, ["neg", "pos"])
                test_loss = stream_loss(model, stream, table, conditioned)
                log(f"{name}: {outcome['steps']:,} steps; test {test_loss:.4f} nats/char ({unknown} test reviews with unseen characters left out)")
                if args.condition == "label":
                    quality = label_agreement(model, vocab, judge, samples, (0.0, args.guidance), conditioned)
                else:
                    quality = vector_retrieval(model, vocab, embedder, dev, test_vectors, conditioned)
                rows.append([name, f"{outcome['steps']:,}", f"{outcome['best']['val_loss']:.4f}", f"{test_loss:.4f}", *quality])
            if args.condition == "label":
                quality_headers = [f"label agreement, {samples} sampled reviews a label", f"with --guidance {args.guidance:g}"]
            else:
                quality_headers = [f"own vector nearest, {samples} test reviews", "with the guidance best on dev"]
            print_table(["model", "steps", "dev loss (nats/char)", "test loss (nats/char)", *quality_headers],
                        rows, title=f"Conditional generation on rt-polarity ({args.condition}), {budget:g} s of training each, "
                                    f"{precision_label(precision, dtype)}, {args.threads} threads")
            print_table(["step", "plain", "conditioned", "ratio"], speed_rows(dtype, vocab_size, args.condition, args.quick),
                        title=f"What conditioning costs ({precision_label(precision, dtype)} training; "
                              f"the same model without and with a {args.condition})")


if __name__ == "__main__":
    main()
