"""`charrnn classify` end to end in subprocesses: train on one file per class, classify arguments
and stdin (order, line count and empty lines kept), JSON lines, evaluation with the confusion
matrix and its plot, cross-validation, and one-line errors."""

import json

import pytest

from test_classifier import synthetic_texts
from test_cli import assert_one_line_error, run

TRAIN_OPTIONS = ("--tokenizer", "char", "--max-steps", "120", "--eval-every", "60", "-b", "32", "--embedding-size", "16",
                 "--hidden-size", "16", "--dropout", "0", "--lr", "1e-2", "--warmup-steps", "10", "--precision", "fp32")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify-cli")
    rows = synthetic_texts(600, seed=0)
    for label in ("food", "sport", "weather"):  # one file per class, named like rt-polarity's
        (root / f"topics.{label}").write_text("".join(f"{text}\n" for text, row_label in rows if row_label == label))
    proc = run("classify", "train", "topics.food", "topics.sport", "topics.weather", *TRAIN_OPTIONS, "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    [line] = proc.stdout.decode().splitlines()  # progress and the summary go to stderr; the outcome to stdout
    outcome = json.loads(line)
    assert outcome["task"] == "classifier" and outcome["steps"] == 120 and 0 <= outcome["best"]["val_accuracy"] <= 1
    assert "best validation:  loss" in proc.stderr.decode() and "accuracy" in proc.stderr.decode()
    return root


def test_classify_arguments_and_stdin(trained):
    proc = run("classify", "-c", "checkpoints/topics/best.pt", "soup and bread", "a windy storm", cwd=trained)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [line.split("\t") for line in proc.stdout.decode().splitlines()]
    assert [(r[0], r[2]) for r in rows] == [("food", "soup and bread"), ("weather", "a windy storm")]
    assert all(0.0 < float(r[1]) <= 1.0 for r in rows)
    piped = run("classify", "-c", "checkpoints/topics/best.pt", cwd=trained,
                input_bytes=b"the team scored a goal\n\nwe ate cheese\n   \n")
    assert piped.returncode == 0, piped.stderr.decode()
    lines = piped.stdout.decode().split("\n")[:4]
    assert lines[0].startswith("sport\t") and lines[1] == "\t\t" and lines[2].startswith("food\t") and lines[3] == "\t\t   "


def test_json_lines_carry_every_class_probability(trained):
    proc = run("classify", "-c", "checkpoints/topics/best.pt", "--json", cwd=trained, input_bytes=b"rain and snow\n\n")
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert rows[0]["label"] == "weather" and set(rows[0]["probabilities"]) == {"food", "sport", "weather"}
    assert sum(rows[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert rows[1] == {"text": "", "label": None, "probabilities": None}


def test_eval_prints_metrics_and_confusion_matrix(trained):
    held_out = synthetic_texts(90, seed=11)
    (trained / "test.tsv").write_text("".join(f"{text}\t{label}\n" for text, label in held_out))
    proc = run("classify", "eval", "-c", "checkpoints/topics/best.pt", "--data", "test.tsv", "--plot", "confusion.png",
               cwd=trained)
    assert proc.returncode == 0, proc.stderr.decode()
    results = dict(line.split("\t") for line in proc.stdout.decode().splitlines())
    assert float(results["accuracy"]) >= 0.95 and results["examples"] == "90"
    assert "confusion matrix" in proc.stderr.decode() and "weather" in proc.stderr.decode()
    assert (trained / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    own = run("classify", "eval", "-c", "checkpoints/topics/best.pt", cwd=trained)  # the run's validation split
    assert own.returncode == 0, own.stderr.decode()
    assert "validation split" in own.stderr.decode()


def test_hidden_size_is_the_layer_output_width_as_in_every_task(trained):
    from charrnn.checkpoint import load_checkpoint

    # --hidden-size 16 (TRAIN_OPTIONS): a bidirectional layer of 8 units a direction, 16 wide.
    assert load_checkpoint(trained / "checkpoints" / "topics").metadata["model_config"]["hidden_size"] == 8


def test_cross_validation_reports_mean_and_spread(trained):
    proc = run("classify", "cv", "topics.food", "topics.sport", "topics.weather", "--folds", "2", *TRAIN_OPTIONS, cwd=trained)
    assert proc.returncode == 0, proc.stderr.decode()
    results = {line.split("\t")[0]: line.split("\t")[1:] for line in proc.stdout.decode().splitlines()}
    assert float(results["accuracy"][0]) >= 0.9 and results["accuracy"][1].startswith("± ")
    assert results["folds"] == ["2"]
    assert "fold 2/2" in proc.stderr.decode()


def test_bad_input_is_a_one_line_error(trained, tmp_path):
    (tmp_path / "one.tsv").write_text("good\tpos\nfine\tpos\n")
    assert_one_line_error(run("classify", "train", "one.tsv", cwd=tmp_path), 1, "single class")
    (tmp_path / "bad.tsv").write_text("good\tpos\nno label\nbad\tneg\n")
    assert_one_line_error(run("classify", "train", "bad.tsv", cwd=tmp_path), 1, "malformed", "line 2", "--skip-bad")
    (tmp_path / "unknown.tsv").write_text("soup\tfood\nthe match\tpolitics\n")
    assert_one_line_error(run("classify", "eval", "-c", str(trained / "checkpoints/topics/best.pt"), "--data", "unknown.tsv",
                              cwd=tmp_path), 1, "'politics'")
    assert_one_line_error(run("classify", "train", "x.tsv", "--pooling", "psychic", cwd=tmp_path), 2, "--pooling")
    assert_one_line_error(run("classify", "train", "x.tsv", "--hidden-size", "15", cwd=tmp_path), 2, "--hidden-size", "even")
    assert_one_line_error(run("classify", "-c", "missing.pt", "hello", cwd=tmp_path), 1, "does not exist")
    zero_batch = run("classify", "-c", str(trained / "checkpoints/topics/best.pt"), "--batch-size", "0", "x", cwd=tmp_path)
    assert_one_line_error(zero_batch, 2, "--batch-size")


def test_strong_imbalance_is_warned_about(tmp_path):
    (tmp_path / "skewed.tsv").write_text("".join(f"text {i}\tcommon\n" for i in range(80)) + "odd one\trare\nodd two\trare\n")
    proc = run("classify", "train", "skewed.tsv", "--tokenizer", "char", "--max-steps", "2", "-b", "8", "--hidden-size", "8",
               "--embedding-size", "8", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "charrnn: warning: the classes are imbalanced (common 80, rare 2)" in proc.stderr.decode()


def test_eval_and_cross_validation_have_json_forms(trained):
    proc = run("classify", "eval", "-c", "checkpoints/topics/best.pt", "--json", cwd=trained)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["labels"] == ["food", "sport", "weather"] and sum(map(sum, result["confusion"])) == result["examples"]
    assert 0.9 <= result["accuracy"] <= 1.0 and len(result["f1"]) == 3
    cv = run("classify", "cv", "topics.food", "topics.sport", "topics.weather", "--folds", "2", *TRAIN_OPTIONS, "--json",
             "-q", cwd=trained)
    assert cv.returncode == 0, cv.stderr.decode()
    summary = json.loads(cv.stdout)
    assert summary["folds"] == 2 and len(summary["per_fold"]) == 2
    assert summary["accuracy"]["mean"] == pytest.approx(sum(f["accuracy"] for f in summary["per_fold"]) / 2)
