"""`charrnn translate` end to end in subprocesses: train on a tiny synthetic pair set, translate
arguments and stdin (order and empty lines kept), JSON lines, the attention plot, evaluation,
and one-line errors."""

import json
import random

import pytest

from test_cli import assert_one_line_error, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("translate-cli")
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 6))) for _ in range(3000)]
    (root / "pairs.tsv").write_text("".join(f"{w}\t{w.upper()}\n" for w in words))
    proc = run("translate", "train", "pairs.tsv", "--max-steps", "400", "--eval-every", "200", "-b", "32",
               "--test-size", "100", "--dev-size", "100", "--embedding-size", "32", "--hidden-size", "64",
               "--num-layers", "1", "--dropout", "0", "--weight-decay", "0.05", "--lr", "5e-3", "--warmup-steps", "20",
               "--tokenizer", "char", "--attention", "multiplicative", "--precision", "fp32", "-q", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    outcome = json.loads(proc.stdout)
    assert outcome["task"] == "translator" and outcome["stop_reason"] == "max_steps" and outcome["best"]["val_loss"] > 0
    return root


def test_the_shared_options_reach_the_translator(trained):
    from charrnn.checkpoint import load_checkpoint

    saved = load_checkpoint(trained / "checkpoints" / "pairs")
    assert saved.metadata["model_config"]["encoder_layers"] == saved.metadata["model_config"]["decoder_layers"] == 1  # --num-layers
    assert saved.training["config"]["weight_decay"] == 0.05


def test_translate_arguments_and_stdin(trained):
    proc = run("translate", "-c", "checkpoints/pairs/best.pt", "abc", "hgf", cwd=trained)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines() == ["ABC", "HGF"]
    piped = run("translate", "-c", "checkpoints/pairs/best.pt", "--beam", "3", cwd=trained,
                input_bytes=b"dead\n\nbad\n   \nface\n")
    assert piped.returncode == 0, piped.stderr.decode()
    assert piped.stdout.decode().split("\n")[:5] == ["DEAD", "", "BAD", "", "FACE"]


def test_json_lines(trained):
    proc = run("translate", "-c", "checkpoints/pairs/best.pt", "--json", cwd=trained, input_bytes=b"cab\nbe\n")
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["source"] for r in rows] == ["cab", "be"]
    assert [r["translation"] for r in rows] == ["CAB", "BE"]
    assert [r["read_as"] for r in rows] == ["cab", "be"]
    assert all(r["score"] <= 0 for r in rows)


def test_typed_input_is_written_as_sentences_only_for_a_model_trained_on_sentences(trained):
    # These sources are bare lower-case words, so the model reads input as it is typed ...
    proc = run("translate", "-c", "checkpoints/pairs/best.pt", "--json", "cab", cwd=trained)
    assert json.loads(proc.stdout)["read_as"] == "cab"
    # ... unless asked (the bundled model, trained on Tatoeba's written sentences, does so by default).
    proc = run("translate", "-c", "checkpoints/pairs/best.pt", "--json", "--normalise", "cab", cwd=trained)
    assert json.loads(proc.stdout)["read_as"] == "Cab."


def test_attention_plot(trained):
    proc = run("translate", "-c", "checkpoints/pairs/best.pt", "fade", "--plot", "attention.png", cwd=trained)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (trained / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    two = run("translate", "-c", "checkpoints/pairs/best.pt", "ab", "cd", "--plot", "x.png", cwd=trained)
    assert_one_line_error(two, 2, "one sentence")


def test_eval_reports_bleu_and_chrf(trained):
    proc = run("translate", "eval", "-c", "checkpoints/pairs/best.pt", "--beam", "3", "--examples", "2", cwd=trained)
    assert proc.returncode == 0, proc.stderr.decode()
    header, *rows = [line.split("\t") for line in proc.stdout.decode().splitlines()]
    assert header == ["decoding", "bleu", "chrf", "looping", "sentences_per_second"]
    assert [row[0] for row in rows] == ["greedy", "beam 3"] and all(0 <= float(row[1]) <= 100 for row in rows)
    err = proc.stderr.decode()
    assert "100 held-out" in err and "examples" in err  # the human part goes to stderr


def test_eval_json_lines(trained):
    proc = run("translate", "eval", "-c", "checkpoints/pairs/best.pt", "--beam", "3", "--examples", "0", "--json", cwd=trained)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [(line["decoding"], line["beam"]) for line in lines] == [("greedy", 1), ("beam 3", 3)]
    for line in lines:
        assert set(line) == {"decoding", "beam", "bleu", "chrf", "looping", "sentences_per_second", "pairs", "split"}
        assert line["pairs"] == 100 and line["split"] == "test" and 0 <= line["chrf"] <= 100


def test_malformed_pairs_and_bad_options(tmp_path):
    (tmp_path / "bad.tsv").write_text("a\tA\nno tab\nb\tB\n" * 3)
    assert_one_line_error(run("translate", "train", "bad.tsv", "--max-steps", "1", cwd=tmp_path), 1,
                          "malformed", "line 2, 5, 8", "--skip-bad")
    assert_one_line_error(run("translate", "train", "bad.tsv", "--attention", "psychic", cwd=tmp_path), 2, "--attention")
    assert_one_line_error(run("translate", "-c", "missing.pt", "hello", cwd=tmp_path), 1, "does not exist")


def test_bad_decoding_and_data_options(trained):
    assert_one_line_error(run("translate", "-c", "checkpoints/pairs/best.pt", "--beam", "0", "abc", cwd=trained), 2, "--beam")
    assert_one_line_error(run("translate", "-c", "checkpoints/pairs/best.pt", "--no-repeat-ngram", "-1", "abc",
                              cwd=trained), 2, "--no-repeat-ngram")
    assert_one_line_error(run("translate", "train", "pairs.tsv", "--typed-copies", "1.5", "--max-steps", "1",
                              "--run-dir", "other", cwd=trained), 2, "--typed-copies")
