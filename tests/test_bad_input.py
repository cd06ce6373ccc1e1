"""Bad and odd input from issue 14's list, each a one-line error (or the right behaviour), never a
traceback: numbers out of range, text in another encoding, outputs that cannot be written, stdout
closed or full or read only in part, a model whose corpus had no newline, a very long line."""

import json
import subprocess
import sys

import pytest

from test_cli import assert_one_line_error, run


@pytest.fixture(scope="module")
def no_newline_model(tmp_path_factory):
    """A tiny language model whose corpus holds no newline."""
    root = tmp_path_factory.mktemp("bad-input")
    (root / "flat.txt").write_text("abc abd abe " * 400)
    proc = run("train", "flat.txt", "--max-steps", "4", "-b", "4", "--seq-len", "16", "--hidden-size", "16",
               "--num-layers", "1", "-q", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    return root


def test_numbers_out_of_range_are_usage_errors(no_newline_model):
    root = no_newline_model
    model = ("-c", "checkpoints/flat")
    assert_one_line_error(run("sample", *model, "--seed", "99999999999999999999", cwd=root), 2, "--seed")
    # sample i uses seed + i: refused before the first sample is printed
    assert_one_line_error(run("sample", *model, "--seed", str(2**63 - 1), "--num-samples", "2", cwd=root), 2, "--seed")
    for value in ("nan", "inf"):
        assert_one_line_error(run("sample", *model, "--temp", value, cwd=root), 2, "--temp", "finite")
    assert_one_line_error(run("train", "flat.txt", "--hidden-size", "1000000000", cwd=root), 2, "--hidden-size")
    for option, value in (("--lr", "inf"), ("--time-budget", "nan"), ("--epochs", "inf"), ("--seed", "-1")):
        assert_one_line_error(run("train", "flat.txt", option, value, "--run-dir", "never", cwd=root), 2, option)
    assert not (root / "never").exists()
    assert_one_line_error(run("train", "flat.txt", "--embedding-size", "1000000000", cwd=root), 2, "--embedding-size")


def test_a_model_without_newlines_samples_without_a_prime(no_newline_model):
    proc = run("sample", "-c", "checkpoints/flat", "-n", "20", "--seed", "1", cwd=no_newline_model)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.decode()) == 21 and set(proc.stdout.decode()[:-1]) <= set("abcde ")


@pytest.mark.parametrize("command", ["translate", "classify"])
def test_text_in_another_encoding(tmp_path, command):
    latin = "café crème\n".encode("latin-1")
    assert_one_line_error(run(command, cwd=tmp_path, input_bytes=latin), 1, "line 1", "utf-8", "--encoding")
    assert_one_line_error(run(command, cwd=tmp_path, input_bytes=bytes(range(256)) * 4), 1, "--encoding")
    read = run(command, "--encoding", "latin-1", "--json", cwd=tmp_path, input_bytes=latin)
    assert read.returncode == 0, read.stderr.decode()
    assert json.loads(read.stdout)[{"translate": "source", "classify": "text"}[command]] == "café crème"
    assert_one_line_error(run(command, "--encoding", "klingon", cwd=tmp_path, input_bytes=latin), 2, "--encoding")
    # a codec that is no text encoding (hex, base64, rot13) is refused by name, not failed on later
    assert_one_line_error(run(command, "--encoding", "base64", cwd=tmp_path, input_bytes=latin), 2, "not a text encoding")
    # utf-16: two bytes a newline, one byte-order mark for the whole stream
    wide = run(command, "--encoding", "utf-16", "--json", cwd=tmp_path, input_bytes="café\nthé\n".encode("utf-16"))
    assert wide.returncode == 0, wide.stderr.decode()
    assert [json.loads(line)[{"translate": "source", "classify": "text"}[command]] for line in wide.stdout.splitlines()] == ["café", "thé"]
    assert_one_line_error(run(command, "--encoding", "utf-16", cwd=tmp_path, input_bytes="café".encode("utf-16-le")), 1, "utf-16")


def test_every_reader_checks_the_encoding(tmp_path):
    from charrnn.labelled import read_labelled
    from charrnn.data import iter_text_chunks
    from charrnn.errors import CharrnnError, UsageError
    from charrnn.text_encoding import check_encoding
    from charrnn.translate.pairs import read_pairs

    assert check_encoding("latin1") == "iso8859-1"
    text = tmp_path / "text.tsv"
    text.write_bytes("hello\tworld\n".encode("utf-16-le"))  # no byte-order mark
    readers = [lambda e: list(iter_text_chunks(text, e)), lambda e: read_pairs(text, encoding=e),
               lambda e: read_labelled([text], encoding=e)]
    for read in readers:
        for codec in ("hex", "zlib", "rot13"):
            with pytest.raises(UsageError, match="not a text encoding"):
                read(codec)
        with pytest.raises(CharrnnError, match="not valid utf-16 text"):  # the decoder's own UnicodeError
            read("utf-16")


def test_a_split_of_few_distinct_sources_is_one_error():
    from charrnn.errors import CharrnnError
    from charrnn.translate.pairs import split_pairs

    pairs = [("Hello.", f"Hola {i}.") for i in range(50)] + [("Bye.", "Adiós.")]
    with pytest.raises(CharrnnError, match="2 distinct sources"):  # 51 pairs, but only two sources to split
        split_pairs(pairs, test_size=1, dev_size=1)


def test_bpe_trains_on_a_very_long_word():
    """A long run without a space (base64, DNA) is cut into MAX_WORD_BYTES pieces: training time
    grew with the square of its length. Text still round-trips exactly."""
    from charrnn.vocab import MAX_WORD_BYTES, Vocab

    text = "ACGT" * 50_000 + " and a few words"
    vocab = Vocab.train_bpe([text], 400)
    assert vocab.decode(vocab.encode(text)) == text
    assert max(len(token) for token in vocab.tokenizer.get_vocab()) <= MAX_WORD_BYTES


def test_a_plot_must_be_a_png_before_any_work(tmp_path):
    assert_one_line_error(run("translate", "--plot", "attention.pt", "hello", cwd=tmp_path), 2, "--plot", ".png")
    assert_one_line_error(run("classify", "eval", "--plot", "confusion", cwd=tmp_path), 2, "--plot", ".png")
    assert_one_line_error(run("translate", "--plot", "missing/attention.png", "hello", cwd=tmp_path), 1, "missing")
    assert list(tmp_path.iterdir()) == []


def test_outputs_that_cannot_be_written(tmp_path, no_newline_model):
    checkpoint = str(no_newline_model / "checkpoints" / "flat" / "best.pt")
    (tmp_path / "folder").mkdir()
    assert_one_line_error(run("export", checkpoint, "folder", cwd=tmp_path), 1, "is a folder")
    assert_one_line_error(run("export", checkpoint, "missing/x.pt", cwd=tmp_path), 1, "does not exist")
    (tmp_path / "a-file").write_text("")
    assert_one_line_error(run("train", str(no_newline_model / "flat.txt"), "--max-steps", "1", cwd=tmp_path,
                              env_extra={"CHARRNN_CACHE": str(tmp_path / "a-file")}), 1, "CHARRNN_CACHE", "is a file")


def test_a_failed_download_leaves_no_folder(tmp_path):
    proc = run("corpus", "download", "tinyshakespeare", "--dest", "new/corpora", "--url",
               (tmp_path / "nowhere.txt").as_uri(), cwd=tmp_path)
    assert_one_line_error(proc, 1, "cannot download")
    assert not (tmp_path / "new").exists()


def test_stdout_closed_or_full(tmp_path, no_newline_model):
    closed = subprocess.run(f"{sys.executable} -m charrnn sample -c checkpoints/flat -n 10 >&-", shell=True,
                            cwd=no_newline_model, capture_output=True)
    assert_one_line_error(closed, 1, "stdout is closed")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "charrnn", "sample", "-c", "checkpoints/flat", "-n", "10"],
                              cwd=no_newline_model, stdout=full, stderr=subprocess.PIPE)
    assert proc.returncode == 1 and "No space left" in proc.stderr.decode() and b"Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["sample -n 1000000", "translate", "classify"])
def test_a_reader_that_stops_early_is_not_an_error(tmp_path, command):
    # Exit 0 when the reader of the pipe goes away (README, "Errors and exit codes").
    (tmp_path / "in.txt").write_text("where is the station\n" * 3000)
    proc = subprocess.run(f"set -o pipefail; {sys.executable} -m charrnn {command} < in.txt | head -c 10 > /dev/null",
                          shell=True, executable="/bin/bash", cwd=tmp_path, capture_output=True)
    assert proc.returncode == 0 and proc.stderr == b""


def test_a_very_long_line_translates_in_bounded_time(tmp_path):
    # The default output cap grows with the input only up to 256 tokens.
    line = " ".join(["where is the train station"] * 400)  # 10,800 characters
    proc = run("translate", "--json", cwd=tmp_path, input_bytes=(line + "\n").encode())
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(json.loads(proc.stdout)["translation"]) < 2000


def test_a_prime_longer_than_one_kernel_call(tmp_path):
    from charrnn.language.sampling import PRIME_WINDOW

    (tmp_path / "p.txt").write_text("ab" * 4000 + "\n")
    (tmp_path / "prime.txt").write_text("ab" * PRIME_WINDOW)  # two windows and a bit
    trained = run("train", "p.txt", "--max-steps", "2", "-b", "2", "--seq-len", "16", "--hidden-size", "8",
                  "--num-layers", "1", "-q", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr.decode()
    proc = run("sample", "-c", "checkpoints/p", "--prime-file", "prime.txt", "-n", "5", "--seed", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().startswith("ab" * PRIME_WINDOW) and len(proc.stdout.decode()) == 2 * PRIME_WINDOW + 6


@pytest.mark.parametrize("damage", ["no model_config", "no model_state", "wrong shape", "bad setting"])
def test_a_damaged_checkpoint_is_one_line(tmp_path, no_newline_model, damage):
    import torch

    stored = torch.load(no_newline_model / "checkpoints" / "flat" / "best.pt", weights_only=True)
    if damage == "no model_config":
        del stored["metadata"]["model_config"]
    elif damage == "no model_state":
        del stored["model_state"]
    elif damage == "wrong shape":
        stored["model_state"]["head.weight"] = torch.zeros(3, 3)
    else:
        stored["metadata"]["model_config"]["hidden_size"] = -4
    torch.save(stored, tmp_path / "damaged.pt")
    before = (tmp_path / "damaged.pt").read_bytes()
    fragment = {"no model_config": "lacks the field 'model_config'", "no model_state": "lacks the field 'model_state'",
                "wrong shape": "head.weight", "bad setting": "damaged"}[damage]
    assert_one_line_error(run("sample", "-c", "damaged.pt", "-n", "5", cwd=tmp_path), 1, "damaged.pt", fragment)
    assert (tmp_path / "damaged.pt").read_bytes() == before


@pytest.mark.parametrize("command", [["sample", "-c", "shakespeare", "-n", "5"], ["translate", "-c", "spa-eng", "hello"],
                                     ["classify", "-c", "sentiment", "fine"], ["forecast", "predict", "-c", "airline"]])
def test_a_bad_device_is_the_users_error_not_the_checkpoints(tmp_path, command):
    assert_one_line_error(run(*command, "--device", "quantum", cwd=tmp_path), 2, "quantum")
