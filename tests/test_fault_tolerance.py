"""The fault-tolerance contract of a training run (issue 14): a run folder that cannot be written is
refused before any step; a save that fails stops the run and keeps the checkpoints before it;
resuming a finished run trains and writes nothing; what a kill -9 leaves (temporary files, log
lines past the checkpoint) is cleared when the run resumes; Ctrl-C during start-up says so; and
kill -9 at seeded random moments of a real run, then resume, gives the uninterrupted run's losses
and weights bit for bit."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPORT_LINES

from charrnn.checkpoint import load_checkpoint, save_checkpoint
from charrnn.errors import CharrnnError
from charrnn.events import PreparingEvent, StepEvent, WarningEvent
from charrnn.language.task import LanguageDataConfig, train_language_model
from charrnn.train import StopReason, TrainConfig, trim_log

SMALL_MODEL = dict(cell="lstm", hidden_size=32, num_layers=1, dropout=0.0)
SMALL_DATA = dict(batch_size=8, seq_len=32)


def _train(corpus, run_dir, *, resume=False, on_event=None, **train_kwargs):
    """A tiny run, or (resume=True) its resume, with every setting given (no timing of the machine)."""
    if resume:
        train = TrainConfig(**train_kwargs) if train_kwargs else None
        return train_language_model(str(corpus), resume=str(run_dir), train=train, device="cpu", precision="fp32",
                                    on_event=on_event)
    train = TrainConfig(**{"eval_every": 5, "warmup_steps": 2, "learning_rate": 1e-2, "weight_decay": 0.1,
                           **train_kwargs})
    return train_language_model(str(corpus), model_config=SMALL_MODEL, data=LanguageDataConfig(**SMALL_DATA),
                                train=train, run_dir=run_dir, device="cpu", precision="fp32", on_event=on_event)


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def _step_losses(run_dir):
    """{step: loss} of the log's step events, refusing a step logged twice."""
    steps = [(e["step"], e["loss"]) for e in _events(run_dir) if e["event"] == "step"]
    assert len({s for s, _ in steps}) == len(steps), f"a step logged twice: {[s for s, _ in steps]}"
    return dict(steps)


def _same_weights(a, b):
    wa, wb = load_checkpoint(a).model_state, load_checkpoint(b).model_state
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _files(run_dir):
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


@pytest.fixture
def read_only(monkeypatch):
    """Make folders refuse new files and folders as a read-only folder does (EACCES). chmod cannot
    show it here: it does not bind root, which CI containers often run as. Every file a run creates
    goes through os.open (the probe, and write_atomically's temporary file), every folder through
    os.mkdir."""
    folders = []
    real_open, real_mkdir = os.open, os.mkdir

    def refuse(path):
        if Path(path).parent.resolve() in folders:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def guarded_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    return lambda folder: folders.append(Path(folder).resolve())


# -- case 5: a run folder that cannot be written, a save that fails ------------------------------


def test_an_unwritable_run_folder_is_refused_before_any_step(tiny_corpus, tmp_path, read_only):
    steps = []

    def record(event):
        if isinstance(event, StepEvent):
            steps.append(event)

    _train(tiny_corpus, tmp_path / "run", max_steps=10)
    before = _files(tmp_path / "run")
    read_only(tmp_path / "run")
    with pytest.raises(CharrnnError, match="cannot write to the run folder .*run: Permission denied") as caught:
        _train(tiny_corpus, tmp_path / "run", resume=True, max_steps=20, on_event=record)
    assert "\n" not in caught.value.message
    assert steps == [] and _files(tmp_path / "run") == before  # nothing trained, nothing lost
    (tmp_path / "locked").mkdir()
    read_only(tmp_path / "locked")
    with pytest.raises(CharrnnError, match="cannot create the run folder .*new: Permission denied"):
        _train(tiny_corpus, tmp_path / "locked" / "new", max_steps=10, on_event=record)  # its parent is locked
    assert steps == [] and not (tmp_path / "locked" / "new").exists()


def test_a_run_folder_that_cannot_be_created_is_one_line_from_the_cli(tmp_path):
    (tmp_path / "c.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 100)
    proc = _cli("train", "c.txt", "--max-steps", "2", "--run-dir", "c.txt/run", cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.splitlines() == [err.strip()], err
    assert err.startswith("charrnn: error: cannot create the run folder c.txt/run")


def test_a_failed_save_stops_the_run_and_keeps_the_checkpoints_before_it(tiny_corpus, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    _train(tiny_corpus, straight, max_steps=20)
    real_save = torch.save

    def disk_full_after_step_7(event):
        if isinstance(event, StepEvent) and event.step == 7:
            def full(obj, handle):
                handle.write(b"half a checkpoint")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            monkeypatch.setattr(torch, "save", full)

    run = tmp_path / "run"
    stopped = r"cannot save .*No space left on device; training stopped at step 10"
    with pytest.raises(CharrnnError, match=stopped) as caught:
        _train(tiny_corpus, run, max_steps=20, on_event=disk_full_after_step_7)
    assert "\n" not in caught.value.message and "--resume" in caught.value.message
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "last.pt", "log.jsonl"]  # no temporary left
    assert load_checkpoint(run / "last.pt").train_state["step"] == 5  # the save before: intact
    assert max(_step_losses(run)) == 10  # the log went on to the failed save...
    resumed = _train(tiny_corpus, run, resume=True)
    assert resumed.stop_reason is StopReason.MAX_STEPS
    assert _step_losses(run) == _step_losses(straight)  # ...and the resume dropped steps 6 to 10 first
    assert _same_weights(run / "last.pt", straight / "last.pt") and _same_weights(run / "best.pt", straight / "best.pt")


# -- case 11: resuming a finished run ------------------------------------------------------------


def test_resuming_a_finished_run_trains_and_writes_nothing(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    _train(tiny_corpus, run, max_steps=20)
    before = _files(run)
    for given in ({}, {"max_steps": 20}, {"max_steps": 5}):
        seen = []
        result = _train(tiny_corpus, run, resume=True, on_event=seen.append, **given)
        assert result.stop_reason is StopReason.MAX_STEPS and result.state.step == 20
        assert result.final_metrics["step"] == 20
        assert [type(e) for e in seen] == [WarningEvent], seen  # not a single step
        assert "already finished" in seen[0].message and "beyond step 20" in seen[0].message
        assert _files(run) == before
    extended = _train(tiny_corpus, run, resume=True, max_steps=23)  # a higher limit trains on
    assert extended.state.step == 23 and sorted(_step_losses(run)) == list(range(1, 24))


def test_a_run_ended_by_early_stopping_or_its_time_budget_stays_ended(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    _train(tiny_corpus, run, max_steps=20)
    ended = load_checkpoint(run / "last.pt")

    def ending(reason, **config):
        ended.training["state"]["stop_reason"] = reason
        ended.training["config"].update(config)
        save_checkpoint(ended, run / "last.pt")
        return _files(run)

    before = ending("early_stopping", max_steps=22)
    for given in ({}, {"max_steps": 22}, {"max_steps": 21}):  # not above the run's own limit
        seen = []
        result = _train(tiny_corpus, run, resume=True, on_event=seen.append, **given)
        assert result.stop_reason is StopReason.EARLY_STOPPING and [type(e) for e in seen] == [WarningEvent]
        assert "stopped early" in seen[0].message and _files(run) == before
    elapsed = ended.training["state"]["elapsed"]
    before = ending("time_budget", max_steps=None, time_budget=elapsed + 0.01)
    result = _train(tiny_corpus, run, resume=True, max_steps=1000)  # more steps, but no more time
    assert result.stop_reason is StopReason.TIME_BUDGET and _files(run) == before
    ending("early_stopping", max_steps=22, time_budget=None)
    result = _train(tiny_corpus, run, resume=True, max_steps=24)  # raised: trains on, patience afresh
    assert (result.stop_reason, result.state.step) == (StopReason.MAX_STEPS, 24)
    assert load_checkpoint(run / "last.pt").train_state["stop_reason"] == "max_steps"


def test_resuming_a_finished_run_from_the_cli_says_so_and_exits_0(tiny_corpus, tmp_path, capsys):
    from charrnn.cli import main

    _train(tiny_corpus, tmp_path / "run", max_steps=10)
    assert main(["train", "--resume", str(tmp_path / "run"), "--max-steps", "5", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"charrnn: warning: {tmp_path / 'run'} has already finished, so nothing was trained or written: it is at "
        "step 10 and --max-steps is 5; to train on, give a --max-steps or --epochs beyond step 10"]


# -- case 14: what a kill -9 leaves behind -------------------------------------------------------


def test_leftover_temporary_files_are_removed_and_nothing_else(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    leftovers = [".best.pt.0123456789ab.tmp", ".last.pt.abcdef012345.tmp", ".log.jsonl.000000000000.tmp",
                 ".write-probe.fedcba987654.tmp"]
    others = [".best.pt.tmp", ".best.pt.0123456789AB.tmp", ".best.pt.0123456789a.tmp", "best.pt.0123456789ab.tmp",
              ".notes.txt.0123456789ab.tmp", "notes.tmp", "pretrain/.best.pt.0123456789ab.tmp"]
    for name in leftovers + others:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(b"x" * 100)
    _train(tiny_corpus, run, max_steps=5)  # a new run in a folder a killed run left
    assert not any((run / name).exists() for name in leftovers)
    assert all((run / name).exists() for name in others)
    for name in leftovers:
        (run / name).write_bytes(b"x" * 100)
    _train(tiny_corpus, run, resume=True, max_steps=10)  # a resumed one
    assert not any((run / name).exists() for name in leftovers)
    assert all((run / name).exists() for name in others)


def test_resume_drops_the_log_lines_after_the_checkpoint(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [{"event": "start", "step": 0}, *({"event": "step", "step": n} for n in range(1, 11)),
             {"event": "eval", "step": 10}, {"event": "end", "step": 10, "reason": "interrupted"},
             {"event": "start", "step": 10}, *({"event": "step", "step": n} for n in range(11, 16)),
             {"event": "eval", "step": 15}, {"event": "step", "step": 16}]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    log.write_text(text + '{"event": "step", "step": 17, "lo')  # killed mid-line, after last.pt at step 15
    trim_log(log, 15)  # resumed from step 15: step 16 and the cut-off line go
    assert [json.loads(line) for line in log.read_text().splitlines()] == lines[:-1]
    trim_log(log, 10)  # resumed from step 10: steps 11 to 15 go, the start of the session that logged them stays
    assert [json.loads(line) for line in log.read_text().splitlines()] == lines[:14]
    before = log.stat().st_mtime_ns, log.stat().st_ino
    trim_log(log, 10)  # nothing to drop: the file is left alone
    assert (log.stat().st_mtime_ns, log.stat().st_ino) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]
    trim_log(tmp_path / "missing.jsonl", 3)  # no log yet: nothing to do


# -- case 15: Ctrl-C during start-up -------------------------------------------------------------


@pytest.fixture
def python_ctrl_c():
    """Python's own Ctrl-C handler, as a process started from a terminal has it: a shell that
    starts pytest in the background (`pytest &`) hands it SIGINT ignored, and no KeyboardInterrupt
    would come of a Ctrl-C."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_ctrl_c")
def test_ctrl_c_before_the_first_step_says_so(tiny_corpus, tmp_path, monkeypatch, capsys):
    def ctrl_c_while_reading(event):
        if isinstance(event, PreparingEvent):
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, while the run times this machine
            time.sleep(5)

    with pytest.raises(CharrnnError, match="interrupted before the first training step; nothing was saved") as caught:
        train_language_model(str(tiny_corpus), model_config=SMALL_MODEL, train=TrainConfig(max_steps=5),
                             run_dir=tmp_path / "run", device="cpu", precision="fp32", on_event=ctrl_c_while_reading)
    assert caught.value.exit_code == 130
    assert not (tmp_path / "run").exists()

    from charrnn.cli import main
    from charrnn.language import task

    def interrupted_timing(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    monkeypatch.setattr(task, "fit_settings_to_machine", interrupted_timing)
    with pytest.raises(SystemExit) as exited:
        main(["train", str(tiny_corpus), "--max-steps", "5", "--run-dir", str(tmp_path / "cli"), "--device", "cpu"])
    assert exited.value.code == 130
    assert capsys.readouterr().err.splitlines()[-1] == ("charrnn: error: interrupted before the first training step; "
                                                        "nothing was saved")


# -- kill -9 at seeded random moments, then resume ------------------------------------------------

# CHARRNN_FUZZ=long, the fuzz suite's release profile, runs ten times as many (about 5 minutes).
KILL_TRIALS = 60 if os.environ.get("CHARRNN_FUZZ") == "long" else 6
KILL_SEED = 14
# A model whose checkpoint takes a while to write, saved every 2 steps: many kills land in a save.
KILL_RUN = ("--max-steps", "40", "--eval-every", "2", "-b", "8", "--seq-len", "32", "--hidden-size", "96",
            "--num-layers", "2", "--lr", "0.01", "--warmup-steps", "2", "--dropout", "0", "--weight-decay", "0.1",
            "--precision", "fp32", "--device", "cpu", "-q")
KILL_RESUME = ("--precision", "fp32", "--device", "cpu", "-q")  # the rest comes from the checkpoint


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "charrnn", *args], cwd=cwd, capture_output=True, env=_env(cwd),
                          timeout=300)


def _env(cwd):
    return {**os.environ, "CHARRNN_CACHE": str(cwd / "cache"), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _kill_during_training(cwd, run_dir, delay, args):
    """Start a run, wait for its first step's start (the log's start event), let it train for
    `delay` seconds, then kill -9 it. Returns whether it was still running when killed."""
    log = run_dir / "log.jsonl"
    starts_before = log.read_text().count('"event": "start"') if log.exists() else 0
    child = subprocess.Popen([sys.executable, "-m", "charrnn", *args], cwd=cwd, env=_env(cwd),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if log.exists() and log.read_text().count('"event": "start"') > starts_before:
            break
        time.sleep(0.005)
    time.sleep(delay)
    running = child.poll() is None
    child.kill()
    _, err = child.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
    return running


@pytest.mark.fuzz  # in the release profile too (CHARRNN_FUZZ=long)
def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_run(tmp_path):
    corpus = "".join(f"ROMEO: the cat sat on mat {i % 7}.\nJULIET: the dog ran to log {i % 5}!\n" for i in range(200))
    (tmp_path / "corpus.txt").write_text(corpus)
    started = time.monotonic()
    straight = _cli("train", "corpus.txt", "--run-dir", "straight", *KILL_RUN, cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr.decode()
    want = _step_losses(tmp_path / "straight")
    training_seconds = [e for e in _events(tmp_path / "straight") if e["event"] == "end"][0]["elapsed"]
    rng = random.Random(KILL_SEED)
    killed = during_save = exact = 0
    for trial in range(KILL_TRIALS):
        run = tmp_path / f"trial-{trial}"
        delay = rng.uniform(0.0, 1.1 * training_seconds)  # now and then after the run has ended
        killed += _kill_during_training(tmp_path, run, delay, ("train", "corpus.txt", "--run-dir", run.name, *KILL_RUN))
        during_save += any(p.name.endswith(".tmp") for p in run.iterdir())
        for name in ("best.pt", "last.pt"):
            if (run / name).exists():
                load_checkpoint(run / name)  # every checkpoint a kill leaves loads
        if (run / "last.pt").exists():
            again = _cli("train", "--resume", run.name, *KILL_RESUME, cwd=tmp_path)
        else:  # killed before its first save: nothing to resume, so start again
            again = _cli("train", "corpus.txt", "--run-dir", run.name, "--overwrite", *KILL_RUN, cwd=tmp_path)
        assert again.returncode == 0, again.stderr.decode()
        assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
        got = _step_losses(run)  # refuses a step logged twice
        assert got == want, f"trial {trial} (killed after {delay:.2f}s) did not resume exactly"
        assert _same_weights(run / "last.pt", tmp_path / "straight" / "last.pt")
        assert _same_weights(run / "best.pt", tmp_path / "straight" / "best.pt")
        exact += 1
    report = (f"{KILL_TRIALS} kill -9 trials ({killed} while running, {during_save} during a save), "
              f"{exact} resumed exactly, in {time.monotonic() - started:.0f}s")
    REPORT_LINES["kill -9"] = report
    assert exact == KILL_TRIALS, report


@pytest.mark.parametrize("damage", ["missing moment", "misshapen moment", "negative step"])
def test_damaged_optimiser_moments_are_one_line_and_change_nothing(tiny_corpus, tmp_path, damage):
    """load_state_dict takes AdamW's state as it is: a damaged one must be refused before the run
    writes anything, not fail at its first step."""
    run_dir = tmp_path / "run"
    _train(tiny_corpus, run_dir, max_steps=6)
    checkpoint = load_checkpoint(run_dir / "last.pt")
    state = next(iter(checkpoint.resume["optimizer"]["state"].values()))
    if damage == "missing moment":
        del state["exp_avg"]
    elif damage == "misshapen moment":
        state["exp_avg_sq"] = torch.zeros(3)
    else:
        state["step"] = torch.tensor(-1.0)
    save_checkpoint(checkpoint, run_dir / "last.pt")
    before = _files(run_dir)
    with pytest.raises(CharrnnError, match="is damaged: its optimiser state"):
        _train(tiny_corpus, run_dir, resume=True, max_steps=12)
    assert _files(run_dir) == before
