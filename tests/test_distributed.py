"""Data-parallel training under torchrun (gloo, two CPU processes, tiny models): two processes train
as one process does with the same global batch, rank 0 alone writes, a killed worker is restarted
and its run resumes exactly, Ctrl-C stops every rank and saves once, and every task's train command
runs under torchrun unchanged. The launches are real torchrun launches of `-m charrnn`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from charrnn.data import BucketedBatches, StreamBatches
from charrnn.distributed import Ranks
from charrnn.errors import UsageError
from test_cli import run
from test_tasks import classifier, forecaster, translator

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="needs torch.distributed with gloo")

# A language model small enough that a step is a few milliseconds; no dropout, so that one
# process and two draw nothing different.
LM = ["--batch-size", "4", "--seq-len", "16", "--hidden-size", "16", "--num-layers", "1", "--dropout", "0",
      "--lr", "0.004", "--warmup-steps", "2", "--weight-decay", "0.1", "--precision", "fp32", "--device", "cpu"]


def torchrun_command(*args, restarts=0):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "--max-restarts", str(restarts), "-m", "charrnn", *args]


def environment(cwd):
    return {**os.environ, "CHARRNN_CACHE": str(cwd / "cache"), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def torchrun(*args, cwd, restarts=0):
    return subprocess.run(torchrun_command(*args, restarts=restarts), cwd=cwd, capture_output=True,
                          env=environment(cwd), timeout=300)


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def step_losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events(run_dir) if e["event"] == "step"}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model_state"]


def assert_same_weights(a: Path, b: Path, atol: float):
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], atol=atol, rtol=0, msg=name)


def wait_for_step(run_dir: Path, step: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Wait until the run has logged a training step at or beyond step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be stopped"
        log = run_dir / "log.jsonl"
        if log.exists() and any(e["event"] == "step" and e["step"] >= step for e in _whole_lines(log)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no step {step} logged in {timeout}s")


def _whole_lines(log: Path) -> list[dict]:
    lines = log.read_text().split("\n")[:-1]  # the last may be half written
    return [json.loads(line) for line in lines]


def worker_of_rank(launcher_pid: int, rank: int) -> int:
    """The pid of torchrun's worker process of a rank (read from /proc: its parent and environment)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher_pid and f"RANK={rank}".encode() in env:
            return int(entry.name)
    raise AssertionError(f"no worker of rank {rank} under {launcher_pid}")


# -- without a launch: the shares ----------------------------------------------------------------


def test_each_rank_reads_its_own_streams_and_together_they_read_one_process_batch():
    tokens = torch.arange(2000).numpy()
    whole = StreamBatches(tokens, 4, 10, end=1800)
    shares = [StreamBatches(tokens, 4, 10, end=1800, rows=Ranks(rank, 2).share(4, "--batch-size")) for rank in (0, 1)]
    for _ in range(3):
        x, y, _ = whole.next()
        parts = [share.next() for share in shares]
        assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)


def test_each_rank_takes_a_share_of_the_same_global_batch():
    lengths = [1 + (i * 7) % 23 for i in range(200)]
    whole = BucketedBatches(lengths, 8, seed=5)
    shares = [BucketedBatches(lengths, 8, seed=5, ranks=Ranks(rank, 2)) for rank in (0, 1)]
    for _ in range(30):  # past an epoch's end
        batch = whole.next()
        parts = [share.next() for share in shares]
        assert sorted(parts[0] + parts[1]) == sorted(batch) and len(parts[0]) == len(parts[1]) == 4
        assert abs(sum(lengths[i] for i in parts[0]) - sum(lengths[i] for i in parts[1])) <= max(lengths)


def test_a_batch_that_does_not_divide_among_the_ranks_is_refused():
    with pytest.raises(UsageError, match="--batch-size 7 does not divide among the 2 processes"):
        Ranks(1, 2).share(7, "--batch-size")
    with pytest.raises(UsageError, match="divide"):
        BucketedBatches([3] * 50, 9, seed=1, ranks=Ranks(0, 2))
    assert list(Ranks(2, 3).part(16)) == list(range(10, 16)) and list(Ranks(0, 4).part(2)) == []


# -- launched by torchrun ------------------------------------------------------------------------


def test_two_processes_train_step_for_step_as_one_with_the_same_global_batch(tiny_corpus, tmp_path):
    args = ["train", str(tiny_corpus), *LM, "--max-steps", "30", "--eval-every", "10", "--json"]
    one = run(*args, "--run-dir", "one", cwd=tmp_path)
    two = torchrun(*args, "--run-dir", "two", cwd=tmp_path)
    assert one.returncode == 0, one.stderr.decode()
    assert two.returncode == 0, two.stderr.decode()
    single, parallel = step_losses(tmp_path / "one"), step_losses(tmp_path / "two")
    assert sorted(parallel) == list(range(1, 31))
    for step in single:
        assert parallel[step] == pytest.approx(single[step], abs=1e-5), step
    # The evaluation sums each rank's part of the validation streams: the figure of one process.
    evaluations = [[e["val_loss"] for e in events(tmp_path / run) if e["event"] == "eval"] for run in ("one", "two")]
    assert evaluations[1] == pytest.approx(evaluations[0], abs=1e-5) and len(evaluations[0]) >= 3
    assert_same_weights(tmp_path / "one" / "last.pt", tmp_path / "two" / "last.pt", atol=1e-5)
    # The checkpoint holds every stream's state, as one process's does.
    hidden = torch.load(tmp_path / "two" / "last.pt", weights_only=True)["resume"]["data"]["hidden"]
    assert hidden[0].shape == (1, 4, 16)

    # One writer: one result on stdout, one summary on stderr, only the run's own files.
    assert len(two.stdout.decode().splitlines()) == 1 and json.loads(two.stdout)["steps"] == 30
    assert two.stderr.decode().count("final validation:") == 1
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["best.pt", "last.pt", "log.jsonl"]


def test_settings_chosen_and_a_time_budget_kept_by_rank_zero_for_all(tiny_corpus, tmp_path):
    # Nothing set: rank 0 times steps of its share and every rank takes its choice; the ranks stop
    # together on rank 0's clock (a rank that stopped alone would leave the other waiting).
    done = torchrun("train", str(tiny_corpus), "--hidden-size", "16", "--num-layers", "1", "--device", "cpu",
                    "--time-budget", "4", "--json", "--run-dir", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    outcome = json.loads(done.stdout)
    assert outcome["stop_reason"] == "time_budget"  # (how close to the budget: test_adaptive, one process)
    start = events(tmp_path / "run")[0]
    assert start["settings"]["batch_size"] % 2 == 0 and "batch_size" in start["settings"]["chosen"]
    assert done.stderr.decode().count("settings: batch") == 1


def test_classify_cv_is_refused_under_torchrun(tmp_path):
    classifier(tmp_path)
    done = torchrun("classify", "cv", "labelled.tsv", "--folds", "2", cwd=tmp_path)
    assert done.returncode != 0
    assert "charrnn: error: classify cv runs on one process; run it without torchrun" in done.stderr.decode()


def test_a_killed_worker_is_restarted_and_the_run_resumes_exactly(tiny_corpus, tmp_path):
    # Dropout on: each rank's own random state must come back too.
    args = ["train", str(tiny_corpus), *LM, "--dropout", "0.1", "--max-steps", "300", "--eval-every", "20", "-q"]
    reference = torchrun(*args, "--run-dir", "reference", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr.decode()

    launch = subprocess.Popen(torchrun_command(*args, "--run-dir", "killed", restarts=1), cwd=tmp_path,
                              env=environment(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_step(tmp_path / "killed", 50, launch)  # past the checkpoints of steps 20 and 40
        os.kill(worker_of_rank(launch.pid, 1), signal.SIGKILL)
        _, err = launch.communicate(timeout=300)
    finally:
        launch.kill()
    assert launch.returncode == 0, err.decode()
    assert "lost contact with the other training processes" in err.decode()  # rank 0's one line
    log = events(tmp_path / "killed")
    assert [e["event"] for e in log].count("start") == 2  # the first start and the restart's resume
    steps = [e["step"] for e in log if e["event"] == "step"]
    assert steps == list(range(1, 301))  # none lost, none twice
    assert_same_weights(tmp_path / "reference" / "last.pt", tmp_path / "killed" / "last.pt", atol=1e-6)


def test_ctrl_c_stops_every_rank_and_saves_once(tiny_corpus, tmp_path):
    args = ["train", str(tiny_corpus), *LM, "--max-steps", "100000", "--eval-every", "10", "--run-dir", "run"]
    launch = subprocess.Popen(torchrun_command(*args), cwd=tmp_path, env=environment(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_step(tmp_path / "run", 25, launch)
        launch.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends torchrun, which passes it on
        _, err = launch.communicate(timeout=120)
    finally:
        launch.kill()
    log = events(tmp_path / "run")
    ends = [e for e in log if e["event"] == "end"]
    assert len(ends) == 1 and ends[0]["reason"] == "interrupted"
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["training"]["state"]
    assert saved["step"] == ends[0]["step"] == max(e["step"] for e in log if e["event"] == "step")
    assert err.decode().count("stopped at step") == 1
    assert "resume with: torchrun --standalone --nproc-per-node 2 -m charrnn train --resume run" in err.decode()


@pytest.mark.parametrize("task, command, options, step_tolerance", [
    (translator, ["translate", "train", "pairs.tsv"],
     ["--tokenizer", "char", "--batch-size", "16", "--embedding-size", "16", "--hidden-size", "16", "--encoder-layers",
      "1", "--decoder-layers", "1", "--test-size", "50", "--dev-size", "50"], 2e-3),  # measured: 5e-4
    (classifier, ["classify", "train", "labelled.tsv"],
     ["--tokenizer", "char", "--batch-size", "16", "--embedding-size", "16", "--hidden-size", "16"], 1e-5),
    (forecaster, ["forecast", "train", "series.csv"], ["--horizon", "6", "--hidden-size", "16", "--batch-size", "16"], 1e-5),
])
def test_every_task_trains_under_torchrun_as_on_one_process(task, command, options, step_tolerance, tmp_path):
    task(tmp_path)  # writes the task's data file
    args = [*command, *options, "--dropout", "0", "--max-steps", "12", "--eval-every", "6", "--precision", "fp32",
            "--device", "cpu", "--json"]
    one = run(*args, "--run-dir", "one", cwd=tmp_path)
    two = torchrun(*args, "--run-dir", "two", cwd=tmp_path)
    assert one.returncode == 0, one.stderr.decode()
    assert two.returncode == 0, two.stderr.decode()
    single, parallel = json.loads(one.stdout), json.loads(two.stdout)
    assert parallel["steps"] == single["steps"] == 12
    # The classifier's and forecaster's losses are means over examples, which the ranks share
    # equally: the same. The translator's is a mean over each rank's target tokens, whose counts
    # differ a little between the shares, so its steps differ a little; its evaluation sums.
    assert step_losses(tmp_path / "two") == pytest.approx(step_losses(tmp_path / "one"), abs=step_tolerance)
    assert parallel["final"]["val_loss"] == pytest.approx(single["final"]["val_loss"], abs=1e-5)
