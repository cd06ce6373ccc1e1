"""Reading run folders back (charrnn.run_history) and the commands on top of it (`charrnn runs`,
`charrnn plot`): one tiny real run, and hand-written logs for the ways a run can stand."""

import json
import shutil

import pytest
import typer

from charrnn.errors import CharrnnError, UsageError
from charrnn.language.task import LanguageDataConfig, train_language_model
from charrnn.plots import plot_loss_curves
from charrnn.run_commands import plot, runs
from charrnn.run_history import RunStatus, find_runs, read_loss_curves, read_run
from charrnn.train import TrainConfig

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JSON_KEYS = {"run", "task", "parameters", "steps", "best_metric", "best_value", "best_step", "best_metrics",
             "training_seconds", "status", "stop_reason", "modified"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished language-model run: 20 steps, evaluated every 5. Every setting is given, so no
    time goes into choosing them."""
    root = tmp_path_factory.mktemp("history")
    corpus = root / "tiny.txt"
    corpus.write_text("".join(f"the cat sat on mat {i % 7}.\nthe dog ran to log {i % 5}!\n" for i in range(200)))
    train = TrainConfig(max_steps=20, eval_every=5, learning_rate=1e-2, warmup_steps=2, weight_decay=0.0)
    train_language_model(str(corpus), model_config=dict(cell="gru", hidden_size=16, num_layers=1, dropout=0.0),
                         data=LanguageDataConfig(batch_size=8, seq_len=16), train=train, run_dir=root / "run",
                         cache_dir=root / "cache", device="cpu", precision="fp32")
    return root / "run"


def log_events(folder):
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def write_log(folder, events, tail=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + tail)


def start(step=0):
    return {"event": "start", "step": step, "total_steps": 10, "parameters": 123, "device": "cpu",
            "precision": "fp32", "time_budget": None}


def step(n, loss):
    return {"event": "step", "step": n, "loss": loss, "lr": 0.01, "grad_norm": 1.0, "tokens": 8 * n,
            "elapsed": 0.1 * n, "total_steps": 10}


def evaluation(n, val_loss, best, improved):
    return {"event": "eval", "step": n, "elapsed": 0.1 * n, "tokens": 8 * n, "val_loss": val_loss,
            "best_val_loss": best, "improved": improved}


def end(n, reason, best, best_step):
    return {"event": "end", "step": n, "reason": reason, "elapsed": 0.1 * n, "best_val_loss": best,
            "best_step": best_step}


def test_summary_of_a_finished_run(run_dir):
    events = log_events(run_dir)
    val_losses = {e["step"]: e["val_loss"] for e in events if e["event"] == "eval"}
    summary = read_run(run_dir)
    assert summary.task == "language_model"
    assert summary.status is RunStatus.FINISHED and summary.stop_reason == "max_steps"
    assert summary.steps == 20
    assert summary.best_value == min(val_losses.values())
    assert val_losses[summary.best_step] == summary.best_value
    assert summary.parameters == events[0]["parameters"] > 0
    assert summary.training_seconds == events[-1]["elapsed"] > 0
    assert "bpc" in summary.describe_best()  # the task's own words for its figures


def test_loss_curves_hold_every_step_and_evaluation(run_dir):
    curves = read_loss_curves(run_dir)
    assert [p.step for p in curves.train] == list(range(1, 21))
    assert [p.step for p in curves.val] == [5, 10, 15, 20]
    losses = {e["step"]: e["val_loss"] for e in log_events(run_dir) if e["event"] == "eval"}
    assert [p.loss for p in curves.val] == [losses[s] for s in (5, 10, 15, 20)]
    elapsed = [p.elapsed for p in curves.train]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0


def test_killed_run_has_no_end_and_keeps_its_figures(run_dir, tmp_path):
    # The log as a kill -9 after step 12 leaves it: no end event, the last line cut short.
    killed = tmp_path / "killed"
    events = [e for e in log_events(run_dir) if e["event"] != "end" and e.get("step", 0) <= 12]
    write_log(killed, events, tail='{"event": "step", "step": 13, "lo')
    summary = read_run(killed)
    assert summary.status is RunStatus.RUNNING_OR_KILLED and summary.stop_reason is None
    assert summary.steps == 12
    assert summary.task is None  # no checkpoint says which task
    assert summary.best_value == min(e["val_loss"] for e in events if e["event"] == "eval")
    # With its last.pt back, the checkpoint names the task.
    shutil.copy(run_dir / "last.pt", killed / "last.pt")
    assert read_run(killed).task == "language_model"


def test_checkpoints_without_a_log(run_dir, tmp_path):
    copied = tmp_path / "copied"
    copied.mkdir()
    shutil.copy(run_dir / "best.pt", copied / "best.pt")
    summary = read_run(copied)
    assert summary.status is RunStatus.NO_LOG
    assert (summary.task, summary.steps, summary.best_value) == ("language_model", 20, read_run(run_dir).best_value)
    with pytest.raises(CharrnnError, match="no log.jsonl"):
        read_loss_curves(copied)


def test_interrupted_then_resumed_run(tmp_path):
    # Ctrl-C at step 7 (last.pt at 7), killed later in a second session at step 9, resumed from
    # 7 again: steps 8 and 9 of the killed session were thrown away with it.
    folder = tmp_path / "resumed"
    session1 = [start(0), *(step(n, 3.0 - 0.1 * n) for n in range(1, 8)), evaluation(5, 2.6, 2.6, True),
                end(7, "interrupted", 2.6, 5)]
    write_log(folder, session1)
    assert read_run(folder).status is RunStatus.INTERRUPTED
    write_log(folder, [*session1, start(7)])  # resumed, no step yet
    assert (read_run(folder).status, read_run(folder).steps) == (RunStatus.RUNNING_OR_KILLED, 7)
    session2 = [start(7), step(8, 9.9), step(9, 9.9), evaluation(9, 9.9, 2.6, False)]
    session3 = [start(7), step(8, 2.2), step(9, 2.1), step(10, 2.0), evaluation(10, 2.05, 2.05, True),
                end(10, "max_steps", 2.05, 10)]
    write_log(folder, session1 + session2 + session3)
    curves = read_loss_curves(folder)
    assert [p.step for p in curves.train] == list(range(1, 11))
    assert [p.loss for p in curves.train[-3:]] == [2.2, 2.1, 2.0]
    assert [(p.step, p.loss) for p in curves.val] == [(5, 2.6), (10, 2.05)]
    summary = read_run(folder)
    assert summary.status is RunStatus.FINISHED and summary.steps == 10
    assert (summary.best_step, summary.best_value) == (10, 2.05)


def test_diverged_run(tmp_path):
    folder = tmp_path / "diverged"
    write_log(folder, [start(), step(1, 3.0), step(2, 2.9), evaluation(2, 2.8, 2.8, True),
                       end(2, "diverged", 2.8, 2)])
    summary = read_run(folder)
    assert summary.status is RunStatus.DIVERGED and summary.best_value == 2.8


def test_a_folder_that_is_not_a_run(tmp_path, run_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CharrnnError, match="is not a run folder"):
        read_run(tmp_path / "empty")
    with pytest.raises(CharrnnError, match="does not exist"):
        read_run(tmp_path / "missing")
    with pytest.raises(CharrnnError, match="give the folder it is in"):
        read_loss_curves(run_dir / "best.pt")
    write_log(tmp_path / "garbled", [start()], tail="not json\n" + json.dumps(step(1, 3.0)) + "\n")
    with pytest.raises(CharrnnError, match="line 2 is not a training event"):
        read_run(tmp_path / "garbled")


def test_find_runs_in_nested_folders(tmp_path):
    for path in ("b/run/log.jsonl", "a/best.pt", "a/pretrain/last.pt", "cv/fold-1/log.jsonl", "cv/fold-2/log.jsonl"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    (tmp_path / "not-a-run" / "deeper").mkdir(parents=True)
    (tmp_path / "not-a-run" / "notes.txt").write_text("")
    names = ["a", "a/pretrain", "b/run", "cv/fold-1", "cv/fold-2"]
    assert find_runs(tmp_path) == [tmp_path / name for name in names]
    assert find_runs(tmp_path / "b" / "run") == [tmp_path / "b" / "run"]
    with pytest.raises(CharrnnError, match="does not exist"):
        find_runs(tmp_path / "missing")


def test_plot_loss_curves_writes_a_png(run_dir, tmp_path):
    other = tmp_path / "other"
    write_log(other, [start(), *(step(n, 3.0 - 0.05 * n) for n in range(1, 21)), evaluation(10, 2.6, 2.6, True)])
    path = tmp_path / "curves.png"
    plot_loss_curves([read_loss_curves(run_dir), read_loss_curves(other)], path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_plot_command_prints_the_path(run_dir, tmp_path, capsys):
    path = tmp_path / "out.png"
    plot([run_dir], output=path, as_json=True)
    assert json.loads(capsys.readouterr().out) == {"path": str(path), "runs": [str(run_dir)]}
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(UsageError, match=".png"):
        plot([run_dir], output=tmp_path / "out.pdf", as_json=False)


def test_runs_json_lines_carry_the_documented_keys(run_dir, tmp_path, capsys):
    root = tmp_path / "runs"
    shutil.copytree(run_dir, root / "lm")
    write_log(root / "lm" / "pretrain", [start(), step(1, 3.0)])  # a nested run, killed
    runs(directory=root, as_json=True)
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [set(line) for line in lines] == [JSON_KEYS, JSON_KEYS]
    assert [line["run"] for line in lines] == [str(root / "lm"), str(root / "lm" / "pretrain")]
    assert [line["status"] for line in lines] == ["finished", "running-or-killed"]
    assert lines[0]["task"] == "language_model" and lines[0]["best_value"] == read_run(run_dir).best_value
    assert captured.err == ""


def test_runs_table_and_command_line(run_dir, capsys):
    # Through Typer, as `charrnn runs FOLDER` parses it.
    app = typer.Typer()
    app.command()(plot)
    app.command()(runs)
    typer.main.get_command(app).main(args=["runs", str(run_dir)], prog_name="charrnn", standalone_mode=False)
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["run", "task", "parameters", "steps"]
    assert row.startswith(str(run_dir)) and "language_model" in row and "finished" in row
