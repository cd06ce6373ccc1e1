"""Settings that fit the machine: the choice is a pure function of measured step costs and the
user's settings (tested here with made-up costs, no timing); explicit settings always win; a run
that chose its settings resumes with them."""

import json

import pytest
import torch

from charrnn.language.adaptive import (PROBE_BATCH_SIZES, REFERENCE_BATCH_TOKENS, REFERENCE_LEARNING_RATE, SEQ_LEN, RunLength,
                              StepCost, choose_settings, dropout_for, learning_per_second, probe_step_costs)
from charrnn.errors import UsageError
from charrnn.language.task import LanguageDataConfig, train_language_model
from charrnn.train import TrainConfig


def cpu_like(batch_size, seq_len):
    """Cost in proportion to the tokens, plus a little fixed overhead: small batches are cheap."""
    return 0.002 + 3e-5 * batch_size * seq_len


def gpu_like(batch_size, seq_len):
    """Cost nearly flat until the device fills up at 256 rows: large batches are almost free."""
    return 0.01 * max(1.0, batch_size / 256)


def costs_of(time_step, sizes=PROBE_BATCH_SIZES):
    return [StepCost(b, SEQ_LEN, time_step(b, SEQ_LEN)) for b in sizes]


BUDGET = RunLength(time_budget=100)


def test_a_cpu_gets_small_batches_and_a_gpu_large_ones():
    cpu = choose_settings(costs_of(cpu_like), BUDGET)
    gpu = choose_settings(costs_of(gpu_like), BUDGET)
    assert cpu.batch_size == PROBE_BATCH_SIZES[0]
    assert gpu.batch_size >= 128
    assert cpu.seq_len == gpu.seq_len == SEQ_LEN
    # Where steps are dear a budget buys fewer of them; where they are cheap, more.
    assert cpu.planned_steps < gpu.planned_steps


def test_the_learning_rate_grows_with_the_batch():
    small = choose_settings([StepCost(8, 64, 0.01)], BUDGET)
    large = choose_settings([StepCost(64, 64, 0.01)], BUDGET)
    assert small.learning_rate < large.learning_rate
    at_reference = choose_settings([StepCost(REFERENCE_BATCH_TOKENS // 64, 64, 0.01)], BUDGET)
    assert at_reference.learning_rate == pytest.approx(REFERENCE_LEARNING_RATE)


def test_the_budget_sets_the_schedule_and_the_evaluations():
    settings = choose_settings([StepCost(16, 64, 0.05)], BUDGET)
    assert settings.planned_steps == 2000
    assert settings.warmup_steps == 100  # 5% of the run
    assert settings.eval_every == 200  # ten evaluations a run
    # A step limit shorter than the budget's is what the run will do.
    limited = choose_settings([StepCost(16, 64, 0.05)], RunLength(time_budget=100, max_steps=500))
    assert limited.planned_steps == 500 and limited.eval_every == 50
    # Without a budget, epochs of the training tokens set the length.
    by_epochs = choose_settings([StepCost(16, 64, 0.05)], RunLength(epochs=2, train_tokens=16 * 64 * 300))
    assert by_epochs.planned_steps == 600


def test_explicit_settings_are_never_overridden():
    given = dict(batch_size=48, seq_len=100, learning_rate=1e-4, warmup_steps=7, eval_every=13, dropout=0.05,
                 weight_decay=0.2)
    for time_step in (cpu_like, gpu_like):
        settings = choose_settings(costs_of(time_step), BUDGET, **given)
        assert {name: getattr(settings, name) for name in given} == given
        assert settings.chosen == ()
    only_lr = choose_settings(costs_of(gpu_like), BUDGET, learning_rate=1e-4)
    assert only_lr.learning_rate == 1e-4 and "learning_rate" not in only_lr.chosen
    assert set(only_lr.chosen) == {"batch_size", "seq_len", "warmup_steps", "eval_every", "dropout", "weight_decay"}
    # A given batch size keeps its own (timed) cost for the budget's arithmetic.
    fixed = choose_settings([StepCost(32, 64, 0.1), StepCost(8, 64, 0.01)], BUDGET, batch_size=32)
    assert fixed.batch_size == 32 and fixed.planned_steps == 1000


def test_dropout_grows_with_the_epochs_of_the_run():
    cost = StepCost(16, 64, 0.05)  # 1,024 tokens a step, 2,000 steps in 100 s: 2 M tokens
    short = choose_settings([cost], RunLength(time_budget=100, train_tokens=1_000_000))  # 2 epochs
    long = choose_settings([cost], RunLength(time_budget=1600, train_tokens=1_000_000))  # 33 epochs
    longer = choose_settings([cost], RunLength(time_budget=100_000, train_tokens=1_000_000))
    assert short.dropout == 0.0 < long.dropout < longer.dropout <= 0.5
    assert long.planned_epochs == pytest.approx(32.8, abs=0.1)
    assert choose_settings([cost], RunLength(time_budget=1600)).dropout == 0.0  # epochs unknown


def test_dropout_is_decided_and_planned_at_the_cost_of_its_masks():
    cost = StepCost(16, 64, 0.05)
    length = RunLength(time_budget=1600, train_tokens=1_000_000)  # 33 epochs without dropout's cost
    free = choose_settings([cost], length)
    slowed = choose_settings([cost], length, dropout_slowdown=1.6)  # 20 epochs at the cost with masks
    assert 0 < slowed.dropout < free.dropout
    assert slowed.planned_steps == pytest.approx(free.planned_steps / 1.6, abs=1)  # planned at the slower steps
    # Given dropout is already in the measured cost; no dropout plans at the cost without masks.
    assert choose_settings([cost], length, dropout=0.2, dropout_slowdown=1.6).planned_steps == free.planned_steps
    # 12 epochs at the cost without masks would get dropout; at the cost with them, 7.5 do not.
    short = choose_settings([cost], RunLength(time_budget=100, train_tokens=170_000), dropout_slowdown=1.6)
    assert short.dropout == 0.0 and short.planned_steps == 2000


def test_dropout_too_small_to_pay_for_its_masks_is_none():
    assert dropout_for(8.0) == dropout_for(10.0) == 0.0  # 10 epochs would give 0.03
    assert dropout_for(12.0) == pytest.approx(0.06)
    assert dropout_for(1000.0) == 0.3


def test_weight_decay_regularises_a_run_long_enough_to_need_it_but_without_dropout():
    cost = StepCost(16, 64, 0.05)  # 2,000 steps of 1,024 tokens in 100 s
    short = choose_settings([cost], RunLength(time_budget=100, train_tokens=1_000_000))  # 2 epochs
    # 10 epochs, but at the cost with dropout's masks 6.4: too short for dropout, long enough to overfit.
    undropped = choose_settings([cost], RunLength(time_budget=100, train_tokens=200_000), dropout_slowdown=1.6)
    dropped = choose_settings([cost], RunLength(time_budget=1600, train_tokens=1_000_000))  # 33 epochs
    assert short.weight_decay == 0.1 and short.dropout == 0.0
    assert undropped.weight_decay == 0.3 and undropped.dropout == 0.0 and "weight_decay" in undropped.chosen
    assert dropped.weight_decay == 0.1 and dropped.dropout > 0
    # Dropout turned off by the user: decay takes its place; a given weight decay is kept.
    assert choose_settings([cost], RunLength(time_budget=1600, train_tokens=1_000_000), dropout=0.0).weight_decay == 0.3
    assert choose_settings([cost], RunLength(time_budget=100, train_tokens=200_000), weight_decay=0.0).weight_decay == 0.0


def test_a_run_needs_a_stop_condition():
    with pytest.raises(UsageError, match="stop condition"):
        choose_settings([StepCost(16, 64, 0.05)], RunLength())


def test_probing_stops_where_a_larger_batch_cannot_pay_for_itself():
    timed = []

    def recording(time_step):
        def run(batch_size, seq_len):
            timed.append(batch_size)
            return time_step(batch_size, seq_len)
        return run

    probe_step_costs(recording(cpu_like), BUDGET, batch_size=None, seq_len=None)
    assert timed == list(PROBE_BATCH_SIZES[:2])  # the second already teaches less per second
    timed.clear()
    probe_step_costs(recording(gpu_like), BUDGET, batch_size=None, seq_len=None, largest=256)
    assert timed[-1] == 256 and len(timed) > 3
    timed.clear()
    probe_step_costs(recording(gpu_like), BUDGET, batch_size=24, seq_len=None)
    assert timed == [24]  # the user's batch size is the only one worth timing
    timed.clear()
    probe_step_costs(recording(gpu_like), BUDGET, batch_size=None, seq_len=None, time_limit=0.0)
    assert timed == [PROBE_BATCH_SIZES[0]]  # out of time for probing after one


def test_longer_runs_get_larger_batches():
    # The critical batch grows as training goes on: where throughput still grows with the batch,
    # a longer run can afford a larger batch (fewer, better updates).
    def rising(batch_size, seq_len):
        return 0.004 + 1e-5 * batch_size * seq_len

    short = choose_settings(costs_of(rising), RunLength(time_budget=60))
    long = choose_settings(costs_of(rising), RunLength(time_budget=3600))
    assert short.batch_size < long.batch_size


def test_a_larger_batch_teaches_less_per_token():
    # At the same tokens per second, the batch past the critical batch teaches less.
    small, large = StepCost(8, 64, 0.01), StepCost(64, 64, 0.08)
    assert learning_per_second(small, BUDGET) > learning_per_second(large, BUDGET)


# -- through the training entry point ------------------------------------------------------------


def _start_event(run_dir):
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] == "start"]


def test_a_run_says_what_it_chose_and_resume_keeps_it(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    model = dict(hidden_size=16, num_layers=1)
    first = train_language_model(str(tiny_corpus), model_config=model, train=TrainConfig(max_steps=6),
                                 run_dir=run, device="cpu", precision="fp32")
    note = _start_event(run)[0]["settings"]
    assert set(note["chosen"]) == {"batch_size", "seq_len", "learning_rate", "warmup_steps", "eval_every", "dropout",
                                   "weight_decay"}
    assert "tokens/s" in note["reason"]
    assert note["planned_steps"] == 6 and first.state.step == 6
    resumed = train_language_model(str(tiny_corpus), resume=str(run), train=TrainConfig(max_steps=9), device="cpu",
                                   precision="fp32")
    assert resumed.state.step == 9
    starts = _start_event(run)
    assert len(starts) == 2 and "settings" not in starts[1]  # nothing re-chosen on resume
    from charrnn.checkpoint import load_checkpoint

    saved = load_checkpoint(run / "last.pt")
    assert saved.metadata["data_config"]["batch_size"] == note["batch_size"]
    assert saved.training["config"]["learning_rate"] == note["learning_rate"]
    assert saved.training["config"]["weight_decay"] == note["weight_decay"]


def test_a_long_run_gets_dropout_timed_with_its_masks(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    train_language_model(str(tiny_corpus), model_config=dict(hidden_size=16, num_layers=1), train=TrainConfig(epochs=40),
                         run_dir=run, device="cpu", precision="fp32")
    note = _start_event(run)[0]["settings"]
    assert note["planned_epochs"] == pytest.approx(40, rel=0.05)
    assert note["dropout"] > 0  # 40 passes over a tiny corpus: it would learn it by heart
    from charrnn.checkpoint import load_checkpoint

    assert load_checkpoint(run / "last.pt").metadata["model_config"]["dropout"] == note["dropout"]


def test_settings_given_in_python_are_kept(tiny_corpus, tmp_path):
    train = TrainConfig(max_steps=4, learning_rate=2e-3, warmup_steps=2, eval_every=2, weight_decay=0.1)
    train_language_model(str(tiny_corpus), model_config=dict(hidden_size=16, num_layers=1, dropout=0.0),
                         data=LanguageDataConfig(batch_size=4, seq_len=16), train=train, run_dir=tmp_path / "run",
                         device="cpu", precision="fp32")
    # Nothing to choose, so nothing is timed and no settings line is written.
    assert "settings" not in _start_event(tmp_path / "run")[0]


def test_a_budget_run_ends_within_its_budget(tiny_corpus, tmp_path):
    result = train_language_model(str(tiny_corpus), model_config=dict(hidden_size=16, num_layers=1),
                                  train=TrainConfig(time_budget=3.0, patience=None), run_dir=tmp_path / "run",
                                  device="cpu", precision="fp32")
    assert result.stop_reason == "time_budget"
    assert 2.0 < result.state.elapsed <= 3.0
    # The closing evaluations scored the whole validation split.
    assert result.final_metrics["val_fraction"] == 1.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_budget_run_on_cuda_times_its_steps_and_ends_in_time(tiny_corpus, tmp_path):
    result = train_language_model(str(tiny_corpus), model_config=dict(hidden_size=64, num_layers=2),
                                  train=TrainConfig(time_budget=5.0, patience=None), run_dir=tmp_path / "run",
                                  device="cuda", precision="auto")
    note = _start_event(tmp_path / "run")[0]["settings"]
    assert note["batch_size"] >= 8 and "tokens/s" in note["reason"]
    assert result.stop_reason == "time_budget" and result.state.elapsed <= 5.0
