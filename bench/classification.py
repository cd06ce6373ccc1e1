"""Sentiment classification on rt-polarity (Pang and Lee, 2005): 10-fold cross-validated accuracy
and calibration of `charrnn classify` (as it is, and its recurrent part alone, without the naive
Bayes n-gram channel) against two bag-of-words baselines on the same folds: a TF-IDF unigram+bigram
logistic regression and multinomial naive Bayes on binarised unigrams+bigrams; charrnn's fold
models again on the same folds written the way people write (capitals, punctuation against the
word); the training time of a fold; out of domain, the everyday-reviews set (bench/data) scored by
a classifier trained on all of rt-polarity (the bundled one) and by the TF-IDF baseline trained on
the same data; and classification speed (sentences per second), batched and one at a time.

    pip install -e ".[bench]"          # scikit-learn, for the bag-of-words baselines
    python bench/classification.py [--folds 10] [--side-by-side] [--quick] [--speed-only] [--everyday-only]
                                   [--everyday-split dev|test] [-- charrnn classify options]

Options after `--` go to charrnn's classifier as on the command line of `charrnn classify cv`
(for example `-- --pooling mean --epochs 10`), so settings can be compared on the same folds.
--side-by-side runs the two charrnn configurations at once, one thread each (about as fast in
total on two cores, and each fold's time is then that of one core).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import charrnn_command, log, make_parser, print_table, set_threads


def rt_polarity_files() -> list[Path]:
    from charrnn.corpora import find_corpus_file

    files = [find_corpus_file(name) for name in ("rt-polarity.pos", "rt-polarity.neg")]
    if None in files:
        sys.exit("error: rt-polarity.pos/.neg not found in the corpus folders; run `charrnn corpus download rt-polarity`")
    return files


EVERYDAY = Path(__file__).parent / "data"


def as_people_write(text: str) -> str:
    """An rt-polarity sentence the way people write one: punctuation against the word before it
    ("great ." -> "great."), a capital at the start of each sentence, "I" for the pronoun.
    "the rock is destined to be the 21st century's new " conan " ." -> "The rock is ... new "conan"."""
    text = re.sub(r" ([.,;:!?)%]|'s\b|n't\b|\.\.\.)", r"\1", text.strip())
    text = re.sub(r'" ([^"]*?) "', r'"\1"', text)  # quoted words: no spaces inside the quotes
    text = re.sub(r"\( ", "(", text)
    text = re.sub(r"\bi\b", "I", text)
    return re.sub(r"(^|[.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def charrnn_cv_command(files: list[Path], folds: int, options: list[str]) -> list[str]:
    return [*charrnn_command(), "classify", "cv", *map(str, files), "--folds", str(folds), "-q", *options]


def parse_cv_output(out: str) -> dict[str, float]:
    """`charrnn classify cv` prints name<TAB>mean[<TAB>± spread] lines on stdout."""
    results = {}
    for line in out.splitlines():
        name, *values = line.split("\t")
        results[name] = float(values[0])
        if len(values) > 1:
            results[name + "_spread"] = float(values[1].lstrip("± "))
    return results


def charrnn_cvs(files: list[Path], folds: int, option_sets: list[list[str]], side_by_side: bool) -> list[dict]:
    """`charrnn classify cv` as a user runs it, once per option set: one after the other, or all
    at once with one thread each."""
    commands = [charrnn_cv_command(files, folds, options) for options in option_sets]
    for cmd in commands:
        log(f"$ {' '.join(cmd)}")
    if not side_by_side:
        return [parse_cv_output(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout)
                for cmd in commands]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    running = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for cmd in commands]
    outputs = [process.communicate()[0] for process in running]
    for cmd, process in zip(commands, running):
        if process.returncode != 0:
            sys.exit(f"error: {' '.join(cmd)} failed with exit code {process.returncode}")
    return [parse_cv_output(out) for out in outputs]


def bag_of_words_cvs(files: list[Path], folds: int) -> dict[str, dict[str, float]]:
    """The two bag-of-words baselines, scored on exactly charrnn's folds:
    - TF-IDF of unigrams and bigrams into an L2-regularised logistic regression, its C tuned on
      each training share by an inner 5-fold search;
    - multinomial naive Bayes (add-one smoothing) on binarised unigrams and bigrams, the MNB of
      Wang and Manning (2012), with charrnn's word splitting."""
    need_scikit_learn()
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.metrics import f1_score
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    from charrnn.labelled import read_labelled, stratified_folds
    from charrnn.classify.ngrams import WORD
    from charrnn.classify.task import CrossValidation

    def naive_bayes():
        return make_pipeline(CountVectorizer(ngram_range=(1, 2), binary=True, token_pattern=WORD.pattern),
                             MultinomialNB(alpha=1.0))

    data = read_labelled(files)
    results = {}
    for name, make_model in (("TF-IDF uni+bigram logistic regression", tfidf_logistic_regression),
                             ("naive Bayes, binarised uni+bigrams (MNB)", naive_bayes)):
        accuracies, f1s, seconds = [], [], []
        for test_index in stratified_folds(data.labels, folds, seed=0):
            held_out = set(test_index)
            train_index = [i for i in range(len(data)) if i not in held_out]
            start = time.perf_counter()
            model = make_model().fit([data.texts[i] for i in train_index], [data.labels[i] for i in train_index])
            seconds.append(time.perf_counter() - start)
            predicted = model.predict([data.texts[i] for i in test_index])
            actual = [data.labels[i] for i in test_index]
            accuracies.append(sum(int(p == a) for p, a in zip(predicted, actual)) / len(actual))
            f1s.append(f1_score(actual, predicted, average="macro"))
        accuracy, spread = CrossValidation.mean_and_spread(accuracies)
        results[name] = {"accuracy": accuracy, "accuracy_spread": spread, "macro_f1": sum(f1s) / len(f1s),
                         "seconds_per_fold": sum(seconds) / len(seconds)}
        log(f"{name}: accuracy {accuracy:.4f}")
    return results


def classification_speed(files: list[Path], checkpoint: Path) -> list[list[str]]:
    """Sentences per second classifying every rt-polarity sentence: batched (charrnn's classify)
    and one sentence at a time (the loop a script calling the model per line would run)."""
    from charrnn.labelled import read_labelled
    from charrnn.classify.task import ClassificationDataConfig, classify, load_classifier

    model, vocab, label_names, saved = load_classifier(checkpoint, device="cpu")
    trained = ClassificationDataConfig.from_checkpoint(saved)
    texts = read_labelled(files).texts
    rows = []
    for name, batch_size, count in (("batched (256)", 256, len(texts)), ("one at a time", 1, 1000)):
        classify(model, vocab, label_names, texts[:300], batch_size=batch_size, data=trained)  # warm-up
        start = time.perf_counter()
        classify(model, vocab, label_names, texts[:count], batch_size=batch_size, data=trained)
        rate = count / (time.perf_counter() - start)
        rows.append([name, f"{count:,}", f"{rate:,.0f}"])
        log(f"{name}: {rate:,.0f} sentences/s")
    return rows


def main() -> None:
    argv = sys.argv[1:]
    options = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = make_parser(__doc__)
    parser.add_argument("--folds", type=int, default=10, help="cross-validation folds [default: 10; 2 with --quick]")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="classifier for the speed and out-of-domain tables [default: the bundled sentiment model]")
    parser.add_argument("--side-by-side", action="store_true",
                        help="run the two charrnn configurations at once, one thread each")
    parser.add_argument("--speed-only", action="store_true", help="only the speed table, no cross-validation")
    parser.add_argument("--everyday-only", action="store_true", help="only the out-of-domain table")
    parser.add_argument("--everyday-split", choices=("dev", "test"), default="dev",
                        help="which everyday-reviews set to score [default: dev; test only to report, once]")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    files = rt_polarity_files()
    if not args.everyday_only:
        # Speed first: measured after the baselines in the same process it read about 20% lower
        # (most likely scikit-learn's thread pools, which stay loaded).
        speed_table(files, args)
    if not args.speed_only:
        everyday_table(files, args)
    if not (args.speed_only or args.everyday_only):
        cross_validation_table(files, args, options)


def cross_validation_table(files: list[Path], args, options: list[str]) -> None:
    folds = 2 if args.quick else args.folds
    if args.quick:
        options = ["--epochs", "1", *options]
    main_name = "charrnn classify cv " + " ".join(options)
    with tempfile.TemporaryDirectory(prefix="charrnn-cv-") as kept:
        configurations = {main_name: [*options, "--run-dir", kept],
                          "charrnn, recurrent part alone (--ngram-buckets 0)": [*options, "--ngram-buckets", "0"]}
        log(f"charrnn classify cv, {folds} folds")
        results = dict(zip(configurations, charrnn_cvs(files, folds, list(configurations.values()), args.side_by_side)))
        results[main_name + ", folds written as people write"] = written_fold_scores(files, folds, Path(kept))
    log(f"bag-of-words baselines, {folds} folds")
    results.update(bag_of_words_cvs(files, folds))
    rows = []
    for name, r in results.items():
        calibration = f"{r['calibration_error']:.3f}" if "calibration_error" in r else "-"
        seconds = f"{r['seconds_per_fold']:.0f}" if "seconds_per_fold" in r else "(same models)"
        rows.append([name.strip(), f"{100 * r['accuracy']:.2f} ± {100 * r['accuracy_spread']:.2f}",
                     f"{100 * r['macro_f1']:.2f}", calibration, seconds])
    threads = "1 thread each, side by side" if args.side_by_side else f"{args.threads} threads"
    print_table(["model", "accuracy % (mean ± sd)", "macro-F1 %", "ECE (target <= 0.05)", "train s/fold"], rows,
                title=f"rt-polarity, {folds}-fold cross-validation (the same stratified folds for every row; charrnn {threads})")


def written_fold_scores(files: list[Path], folds: int, kept: Path) -> dict[str, float]:
    """Each kept fold model scored on its own held-out fold, every text rewritten by as_people_write."""
    from charrnn.labelled import read_labelled, stratified_folds
    from charrnn.classify.task import ClassificationDataConfig, CrossValidation, evaluate_classifier, load_classifier

    data = read_labelled(files)
    scores = []
    for k, test_index in enumerate(stratified_folds(data.labels, folds, seed=0)):  # cross_validate's folds
        model, vocab, label_names, saved = load_classifier(kept / f"fold-{k + 1}" / "best.pt", device="cpu")
        trained = ClassificationDataConfig.from_checkpoint(saved)
        fold = data.subset(test_index)
        fold.texts = [as_people_write(text) for text in fold.texts]
        scores.append(evaluate_classifier(model, vocab, label_names, fold, data=trained))
    accuracy, spread = CrossValidation.mean_and_spread([m.accuracy for m in scores])
    log(f"written folds: accuracy {accuracy:.4f}")
    return {"accuracy": accuracy, "accuracy_spread": spread, "macro_f1": sum(m.macro_f1 for m in scores) / len(scores),
            "calibration_error": sum(m.calibration_error for m in scores) / len(scores)}


def everyday_table(files: list[Path], args) -> None:
    """Out of domain: the everyday-reviews set scored by charrnn's classifier (trained on all of
    rt-polarity) and by the TF-IDF baseline fitted on the same texts."""
    from charrnn.labelled import read_labelled
    from charrnn.classify.task import ClassificationDataConfig, evaluate_classifier, load_classifier

    checkpoint = args.checkpoint or "sentiment"
    everyday_file = EVERYDAY / f"everyday-reviews-{args.everyday_split}.tsv"
    model, vocab, label_names, saved = load_classifier(checkpoint, device="cpu")
    trained = ClassificationDataConfig.from_checkpoint(saved)
    everyday = read_labelled([everyday_file], label_names=label_names)
    ours = evaluate_classifier(model, vocab, label_names, everyday, data=trained)
    rt = read_labelled(files, label_names=label_names)
    baseline = tfidf_logistic_regression().fit(rt.texts, rt.labels)
    predicted = baseline.predict(everyday.texts)
    baseline_accuracy = sum(int(p == a) for p, a in zip(predicted, everyday.labels)) / len(everyday)
    rows = [[f"charrnn ({checkpoint.name})", f"{100 * ours.accuracy:.1f}", f"{ours.calibration_error:.3f}"],
            ["TF-IDF uni+bigram logistic regression", f"{100 * baseline_accuracy:.1f}", "-"]]
    print_table(["model (trained on all of rt-polarity)", "accuracy %", "ECE"], rows,
                title=f"Out of domain: {everyday_file.name} ({len(everyday)} everyday reviews; target: the baseline + 3 points)")


def need_scikit_learn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        sys.exit('error: the bag-of-words baselines need scikit-learn: pip install -e ".[bench]"')


def tfidf_logistic_regression():
    """TF-IDF of unigrams and bigrams into an L2-regularised logistic regression, its C tuned by
    an inner 5-fold search on the training texts."""
    need_scikit_learn()
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                             LogisticRegression(max_iter=2000))
    return GridSearchCV(pipeline, {"logisticregression__C": [1, 3, 10, 30]}, cv=5)


def speed_table(files: list[Path], args) -> None:

    checkpoint = args.checkpoint or "sentiment"
    if checkpoint.exists():
        print_table(["decoding", "sentences", "sentences/s"], classification_speed(files, checkpoint),
                    title=f"Classification speed of {checkpoint.name} on rt-polarity sentences (CPU, {args.threads} threads)")
    else:
        log(f"no classifier at {checkpoint}: speed table left out")


if __name__ == "__main__":
    main()
