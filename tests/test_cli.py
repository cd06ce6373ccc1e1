"""The command line end to end, in subprocesses, as a user runs it: training, sampling, pipes,
and one-line errors with the right exit codes for every kind of bad input."""

import json
import os
import subprocess
import sys

import pytest


def run(*args, cwd, input_bytes=None, env_extra=None):
    env = {**os.environ, "CHARRNN_CACHE": str(cwd / "cache"), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "charrnn", *args], cwd=cwd, input=input_bytes,
                          capture_output=True, env=env, timeout=300)


def assert_one_line_error(proc, code, *fragments):
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("charrnn: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert proc.stdout == b""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained once through the CLI, shared by the tests below."""
    root = tmp_path_factory.mktemp("cli")
    text = "".join(f"ROMEO: the cat sat on mat {i % 7}.\nJULIET: the dog ran to log {i % 5}!\n" for i in range(200))
    (root / "corpus.txt").write_text(text)
    proc = run("train", "corpus.txt", "--max-steps", "40", "--eval-every", "20", "-b", "8", "--seq-len", "32",
               "--hidden-size", "32", "--lr", "0.01", "--precision", "fp32", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    return root, proc


def test_train_writes_run_folder_and_reports_on_stderr(trained):
    root, proc = trained
    assert proc.stdout == b""  # progress and summary go to stderr
    err = proc.stderr.decode()
    assert "best validation" in err and "bpc" in err
    run_dir = root / "checkpoints" / "corpus"
    assert {"best.pt", "last.pt", "log.jsonl"} <= {p.name for p in run_dir.iterdir()}
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert any(e["event"] == "eval" and "val_bpc" in e for e in events)


def test_sample_streams_reproducible_text(trained):
    root, _ = trained
    args = ("sample", "-c", "checkpoints/corpus/best.pt", "-n", "200", "--seed", "3", "--prime", "ROMEO:")
    a, b = run(*args, cwd=root), run(*args, cwd=root)
    assert a.returncode == 0, a.stderr.decode()
    assert a.stdout == b.stdout and a.stdout.startswith(b"ROMEO:")
    assert len(a.stdout.decode()) == len("ROMEO:") + 200 + 1  # prime, sample, final newline
    assert a.stderr == b""
    greedy = run("sample", "-c", "checkpoints/corpus/best.pt", "-n", "50", "--temp", "0", "--seed", "1", cwd=root)
    greedy2 = run("sample", "-c", "checkpoints/corpus/best.pt", "-n", "50", "--temp", "0", "--seed", "2", cwd=root)
    assert greedy.stdout == greedy2.stdout  # temperature 0 ignores the seed


def test_sample_into_a_closed_pipe_ends_quietly(trained):
    root, _ = trained
    env = {**os.environ, "CHARRNN_CACHE": str(root / "cache")}
    proc = subprocess.run(f"{sys.executable} -m charrnn sample -c checkpoints/corpus/best.pt -n 100000 | head -c 100",
                          shell=True, cwd=root, capture_output=True, env=env, timeout=300)
    assert len(proc.stdout) == 100
    assert proc.stderr == b"", proc.stderr.decode()


def test_num_samples_and_prime_file(trained):
    root, _ = trained
    (root / "prime.txt").write_text("JULIET:")
    proc = run("sample", "-c", "checkpoints/corpus/best.pt", "-n", "20", "--num-samples", "3", "--prime-file", "prime.txt",
               "--seed", "1", cwd=root)
    assert proc.returncode == 0
    assert proc.stdout.decode().count("JULIET:") >= 3


def test_info_and_export(trained):
    root, _ = trained
    info = run("info", "checkpoints/corpus/best.pt", cwd=root)
    assert info.returncode == 0
    out = info.stdout.decode()
    assert "language_model" in out and "parameters" in out and "best validation" in out
    exported = run("export", "checkpoints/corpus/best.pt", "small.pt", "--half", "--note", "licence=public domain", cwd=root)
    assert exported.returncode == 0, exported.stderr.decode()
    assert (root / "small.pt").stat().st_size < (root / "checkpoints/corpus/best.pt").stat().st_size
    assert "public domain" in run("info", "small.pt", cwd=root).stdout.decode()
    resume = run("train", "corpus.txt", "--resume", "small.pt", "--max-steps", "50", cwd=root)
    assert_one_line_error(resume, 2, "cannot resume")


def test_resume_extends_a_finished_run(trained, tmp_path):
    root, _ = trained
    import shutil

    shutil.copytree(root / "checkpoints" / "corpus", tmp_path / "run")
    shutil.copy(root / "corpus.txt", tmp_path / "corpus.txt")
    proc = run("train", "--resume", "run", "--max-steps", "45", "-q", cwd=tmp_path)  # corpus from the checkpoint
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""  # --quiet
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert max(e["step"] for e in events if e["event"] == "step") == 45


def test_a_second_run_never_replaces_the_first(trained):
    root, _ = trained
    before = (root / "checkpoints" / "corpus" / "best.pt").read_bytes()
    again = run("train", "corpus.txt", "--max-steps", "2", cwd=root)
    assert_one_line_error(again, 1, "already holds a run", "--resume", "--overwrite")
    assert (root / "checkpoints" / "corpus" / "best.pt").read_bytes() == before


def test_train_from_stdin(tmp_path):
    text = ("abc def ghi\n" * 300).encode()
    proc = run("train", "-", "--max-steps", "3", "-b", "4", "--seq-len", "16", "--hidden-size", "8", "-q",
               "--run-dir", "out", cwd=tmp_path, input_bytes=text)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "out" / "best.pt").exists()


@pytest.mark.parametrize(
    "content,fragments",
    [
        (b"", ["empty"]),
        ("caf\u00e9\n".encode("latin-1") * 500, ["not valid utf-8", "--encoding"]),
        (bytes(range(256)) * 40, ["binary"]),
        (b"too short\n", ["too short", "--batch-size"]),
    ],
    ids=["empty", "not-utf8", "binary", "too-short"],
)
def test_bad_corpora(tmp_path, content, fragments):
    (tmp_path / "bad.txt").write_bytes(content)
    proc = run("train", "bad.txt", "--max-steps", "2", cwd=tmp_path)
    assert_one_line_error(proc, 1, *fragments)


def test_other_encodings_train_with_the_option(tmp_path):
    (tmp_path / "latin.txt").write_bytes("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 300)
    proc = run("train", "latin.txt", "--encoding", "latin-1", "--max-steps", "2", "-b", "4", "--seq-len", "16",
               "--hidden-size", "8", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()


@pytest.mark.parametrize(
    "args,code,fragments",
    [
        (("train", "missing.txt", "--max-steps", "1"), 1, ["does not exist"]),
        (("train", "c.txt", "--cell", "transformer"), 2, ["--cell"]),
        (("train", "c.txt", "--dropout", "1.5"), 2, ["--dropout"]),
        (("train", "c.txt", "--device", "tpu"), 2, ["device"]),
        (("train", "c.txt", "--max-steps", "notanumber"), 2, ["--max-steps"]),
        (("train", "c.txt", "--no-such-option"), 2, ["--no-such-option"]),
        (("sample", "-c", "nowhere.pt"), 1, ["does not exist"]),
        (("sample", "-c", "c.txt"), 1, ["cannot be read"]),
        (("info", "c.txt"), 1, ["cannot be read"]),
        (("frobnicate",), 2, ["frobnicate"]),
    ],
)
def test_usage_and_runtime_errors(tmp_path, args, code, fragments):
    (tmp_path / "c.txt").write_text("hello world\n" * 1000)
    assert_one_line_error(run(*args, cwd=tmp_path), code, *fragments)


@pytest.mark.parametrize(
    "args,fragments",
    [
        (("--temp", "-1"), ["--temp"]),
        (("--top-k", "0"), ["--top-k"]),
        (("--top-p", "2"), ["--top-p"]),
        (("-n", "-5"), ["--length"]),
        (("--prime", "ROMEO: \u263a\u00a7"), ["lacks", "'\u263a'", "'\u00a7'"]),
        (("--prime", "x", "--prime-file", "p.txt"), ["not both"]),
    ],
)
def test_bad_sampling_options(trained, args, fragments):
    root, _ = trained
    assert_one_line_error(run("sample", "-c", "checkpoints/corpus/best.pt", *args, cwd=root), 2, *fragments)


def test_help_and_version(tmp_path):
    for flag in ("-h", "--help"):
        proc = run(flag, cwd=tmp_path)
        assert proc.returncode == 0 and b"train" in proc.stdout
    proc = run("train", "-h", cwd=tmp_path)
    assert proc.returncode == 0 and b"--time-budget" in proc.stdout
    version = run("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith(b"charrnn ")


def test_help_does_not_import_torch(tmp_path):
    code = "import sys; from charrnn import cli; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()


def test_bpe_tokenizer_end_to_end(tmp_path):
    text = "".join(f"señor {i % 9} está aquí — ¿verdad?\n" for i in range(400))
    (tmp_path / "es.txt").write_text(text)
    proc = run("train", "es.txt", "--tokenizer", "bpe", "--vocab-size", "300", "--max-steps", "5", "-b", "4",
               "--seq-len", "16", "--hidden-size", "16", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    sample = run("sample", "-c", "checkpoints/es/best.pt", "-n", "40", "--seed", "0", "--prime", "señor", cwd=tmp_path)
    assert sample.returncode == 0, sample.stderr.decode()
    assert sample.stdout.decode("utf-8").startswith("señor")  # valid UTF-8 even from byte tokens


def test_bundled_checkpoint_is_the_default(tmp_path):
    proc = run("sample", "-n", "200", "--seed", "1", "--prime", "ROMEO:", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().startswith("ROMEO:") and len(proc.stdout.decode()) == len("ROMEO:") + 201
    named = run("sample", "-c", "shakespeare", "-n", "200", "--seed", "1", "--prime", "ROMEO:", cwd=tmp_path)
    assert named.stdout == proc.stdout  # the default is the bundled model, by name
    info = run("info", "shakespeare.pt", cwd=tmp_path)
    assert b"tinyshakespeare" in info.stdout


def test_a_missing_checkpoint_names_the_bundled_models(tmp_path):
    proc = run("sample", "-c", "shakespear", cwd=tmp_path)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    assert b"shakespear does not exist" in proc.stderr and b"spa-eng" in proc.stderr


def test_a_file_of_a_bundled_model_name_wins_over_the_bundled_model(tmp_path):
    from charrnn.checkpoint import checkpoint_file

    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / "best.pt").write_bytes(b"")
    assert checkpoint_file(tmp_path / "shakespeare") == tmp_path / "shakespeare" / "best.pt"
    assert checkpoint_file("shakespeare").parent.name == "models"  # cwd has no such folder


def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path):
    import signal
    import time

    (tmp_path / "c.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 400)
    env = {**os.environ, "CHARRNN_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "charrnn", "train", "c.txt", "--max-steps", "100000", "-b", "4",
                              "--seq-len", "16", "--hidden-size", "16", "--run-dir", "run", "-q"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = tmp_path / "run" / "log.jsonl"
    deadline = time.monotonic() + 120
    # Wait for five step events ('"step"' alone also matches the start event and every step's own "step" key).
    while time.monotonic() < deadline and (not log.exists() or log.read_text().count('"event": "step"') < 5):
        time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err.decode()
    assert b"Traceback" not in err
    from charrnn.checkpoint import load_checkpoint

    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved.resumable and saved.train_state["step"] >= 5
    # Stopped before its first evaluation, the run has no best.pt: the folder still names a model.
    assert not (tmp_path / "run" / "best.pt").exists()
    info = run("info", "run", cwd=tmp_path)
    assert info.returncode == 0 and b"last.pt" in info.stdout, info.stderr.decode()
    sample = run("sample", "-c", "run", "-n", "20", "--seed", "1", cwd=tmp_path)
    assert sample.returncode == 0 and len(sample.stdout.decode()) == 21, sample.stderr.decode()


def test_every_training_command_ends_the_same_way(tmp_path, capsys):
    from types import SimpleNamespace

    from charrnn.cli_support import finish_training
    from charrnn.errors import CharrnnError, Interrupted
    from charrnn.train import StopReason, TrainState

    def ended(reason):
        return SimpleNamespace(state=TrainState(), stop_reason=StopReason(reason), run_dir=tmp_path, final_metrics={})

    finish_training(ended("epochs"), quiet=True, command="charrnn classify train")
    (tmp_path / "last.pt").write_bytes(b"")  # interrupted before the first evaluation: no best.pt
    with pytest.raises(Interrupted) as stopped:
        finish_training(ended("interrupted"), quiet=False, command="charrnn classify train")
    assert stopped.value.exit_code == 130 and stopped.value.message == ""  # the summary says it all
    summary = capsys.readouterr().err.replace("\n", "")
    assert f"resume with: charrnn classify train --resume {tmp_path}" in summary
    assert f"checkpoints: {tmp_path}/last.pt;" in summary and "best.pt" not in summary
    with pytest.raises(Interrupted, match=f"resume with: charrnn classify train --resume {tmp_path}"):
        finish_training(ended("interrupted"), quiet=True, command="charrnn classify train")  # no summary: the error says it
    with pytest.raises(CharrnnError, match="diverged"):
        finish_training(ended("diverged"), quiet=True, command="charrnn translate train")


def test_every_training_command_takes_the_shared_options():
    import click
    import typer

    from charrnn.cli import app
    from charrnn.cli_options import TRAINING_OPTIONS

    root = typer.main.get_command(app)
    context = click.Context(root)
    commands = {"train": root.get_command(context, "train")}
    for group in ("translate", "classify"):
        for name in ("train", "cv"):
            command = root.get_command(context, group).get_command(context, name)
            if command is not None:
                commands[f"{group} {name}"] = command
    assert set(commands) == {"train", "translate train", "classify train", "classify cv"}
    for name, command in commands.items():
        options = {param.name for param in command.params}
        expected = set(TRAINING_OPTIONS) - ({"resume", "overwrite"} if name == "classify cv" else set())
        assert expected <= options, (name, expected - options)


@pytest.mark.parametrize("args", [(), ("corpus",)])
def test_a_group_without_arguments_prints_its_help_once(args, tmp_path):
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert (proc.stdout + proc.stderr).decode().count("Usage: charrnn") == 1


def test_progress_without_a_terminal_is_plain_lines(capsys):
    from charrnn.console import LOG_EVERY, TrainingProgress
    from charrnn.events import EvalEvent, StartEvent, StepEvent

    progress = TrainingProgress(unit="tok", terminal=False)
    progress(StartEvent(step=0, total_steps=300, parameters=1000, device="cpu", precision="fp32", time_budget=None))
    for step in range(1, 301):  # one step a tenth of a second: 30 s of training
        progress(StepEvent(step=step, loss=1.0, lr=1e-3, grad_norm=1.0, tokens=step * 100, elapsed=step * 0.1,
                           total_steps=300))
        if step % 100 == 0:
            progress(EvalEvent({"step": step, "elapsed": step * 0.1, "val_loss": 0.9}, 0.9, True))
    err = capsys.readouterr().err
    assert "\r" not in err  # a log file gets lines, not a redrawn bar
    lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert len(lines) == 3  # one an evaluation
    assert lines[0].startswith("step 100/300, 10s: loss") and "val loss 0.900" in lines[-1]
    # Without evaluations, a line every LOG_EVERY seconds of training.
    for step in range(301, 301 + int(2.5 * LOG_EVERY / 0.1)):
        progress(StepEvent(step=step, loss=1.0, lr=1e-3, grad_norm=1.0, tokens=step * 100, elapsed=step * 0.1,
                           total_steps=None))
    assert len([line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]) == 2


def test_sample_and_info_have_json_forms(trained):
    root, _ = trained
    proc = run("sample", "-c", "checkpoints/corpus", "-n", "40", "--seed", "1", "--num-samples", "2", "--prime", "th",
               "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [(r["sample"], r["seed"]) for r in rows] == [(1, 1), (2, 2)]
    assert all(r["prime"] == "th" and r["text"].startswith("th") and len(r["text"]) == 42 for r in rows)
    plain = run("sample", "-c", "checkpoints/corpus", "-n", "40", "--seed", "1", "--prime", "th", cwd=root)
    assert plain.stdout.decode() == rows[0]["text"] + "\n"  # the same sample, streamed
    info = run("info", "checkpoints/corpus", "--json", cwd=root)
    summary = json.loads(info.stdout)
    assert summary["task"] == "language_model" and summary["steps"] > 0 and summary["resumable"]
    assert summary["best_validation"]["val_loss"] > 0 and summary["path"].endswith("best.pt")


def test_train_and_corpus_list_have_json_forms(tmp_path):
    (tmp_path / "c.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 200)
    proc = run("train", "c.txt", "--max-steps", "6", "--eval-every", "3", "-b", "4", "--seq-len", "16",
               "--hidden-size", "16", "--num-layers", "1", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    [line] = proc.stdout.decode().splitlines()  # progress and the summary stay on stderr
    outcome = json.loads(line)
    assert set(outcome) == {"run_dir", "task", "stop_reason", "steps", "elapsed", "final", "best", "best_step", "checkpoints"}
    assert outcome["stop_reason"] == "max_steps" and outcome["steps"] == 6 and outcome["task"] == "language_model"
    assert outcome["best"]["val_loss"] <= outcome["final"]["val_loss"] and outcome["best_step"] in (3, 6)
    assert [os.path.basename(p) for p in outcome["checkpoints"]] == ["best.pt", "last.pt"]
    listing = run("corpus", "list", "--json", cwd=tmp_path)
    corpora = [json.loads(line) for line in listing.stdout.decode().splitlines()]
    assert {"tinyshakespeare", "spa-eng", "rt-polarity"} <= {c["name"] for c in corpora}
    assert all(set(c) == {"name", "description", "licence", "attribution", "files", "url", "path"} for c in corpora)


def test_info_without_a_terminal_prints_plain_lines(tmp_path):
    proc = run("info", "spa-eng", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    fields = dict(line.split("\t", 1) for line in proc.stdout.decode().splitlines())
    assert fields["task"] == "translator" and fields["path"].endswith("spa-eng.pt")
    assert "│" not in proc.stdout.decode() and "┃" not in proc.stdout.decode()  # no drawn table in a pipe


def test_info_shortens_a_long_list_but_json_keeps_it_whole(tmp_path, capsys):
    from charrnn.console import print_checkpoint_info

    summary = {"path": "x.pt", "task": "language_model", "format_version": 3, "parameters": 10, "vocabularies": {},
               "model_config": {"condition_mean": [0.5] * 256, "conditions": ["neg", "pos"]}, "corpus": None,
               "steps": None, "best_validation": None, "resumable": False, "notes": {}}
    print_checkpoint_info(summary)
    fields = dict(line.split("\t", 1) for line in capsys.readouterr().out.splitlines())
    assert fields["model.condition_mean"] == "[0.5, 0.5, 0.5, 0.5, ... 256 in all]"
    assert fields["model.conditions"] == "['neg', 'pos']"


def test_group_help_shows_the_default_commands_options(tmp_path):
    for group, own, subcommands in (("translate", ("--beam", "--json", "--plot", "--checkpoint"), ("train", "eval")),
                                    ("classify", ("--json", "--batch-size", "--checkpoint"), ("train", "eval", "cv"))):
        proc = run(group, "--help", cwd=tmp_path, env_extra={"COLUMNS": "200"})
        assert proc.returncode == 0, proc.stderr.decode()
        text = proc.stdout.decode()
        assert text.count("Usage:") == 1
        for word in (*own, *subcommands):
            assert word in text, (group, word)
        assert "│ text " not in text  # the default command is not listed: its name is not something users type


def test_version_and_shell_completion(tmp_path):
    from charrnn import __version__

    for flag in ("-V", "--version"):
        assert run(flag, cwd=tmp_path).stdout.decode().strip() == f"charrnn {__version__}"
    # The script --show-completion prints, asked for by shell: --show-completion itself takes the
    # shell from the process tree (shellingham), which a test runner started without a shell hides.
    script = run(cwd=tmp_path, env_extra={"_CHARRNN_COMPLETE": "source_bash"})
    assert script.returncode == 0 and "_CHARRNN_COMPLETE" in script.stdout.decode()
    completed = run(cwd=tmp_path, env_extra={"_CHARRNN_COMPLETE": "complete_bash", "COMP_WORDS": "charrnn tr",
                                             "COMP_CWORD": "1"})
    assert completed.stdout.decode().split() == ["train", "translate"]
