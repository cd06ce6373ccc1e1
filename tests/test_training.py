"""The training loop: learning, checkpoints that reload exactly, exact resume after Ctrl-C,
atomic saves, time budgets and early stopping."""

import json
import os
import signal

import pytest
import torch

from charrnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from charrnn.errors import CharrnnError, UsageError
from charrnn.events import StepEvent
from charrnn.classify.model import ClassifierConfig
from charrnn.language.model import LanguageModel, LanguageModelConfig
from charrnn.translate.model import TranslatorConfig
from charrnn.language.task import LanguageDataConfig, load_language_model, train_language_model
from charrnn.train import StopReason, TrainConfig, learning_rate_at

SMALL_MODEL = dict(cell="lstm", hidden_size=32, num_layers=2, dropout=0.1)
SMALL_DATA = dict(batch_size=8, seq_len=32)


def _train(corpus, run_dir, **train_kwargs):
    train = TrainConfig(**{"eval_every": 10, "warmup_steps": 5, "learning_rate": 1e-2, **train_kwargs})
    return train_language_model(str(corpus), model_config=SMALL_MODEL, data=LanguageDataConfig(**SMALL_DATA),
                                train=train, run_dir=run_dir, device="cpu", precision="fp32")


def _step_losses(run_dir):
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {e["step"]: e["loss"] for e in events if e["event"] == "step"}


def test_loss_falls_when_overfitting(tiny_corpus, tmp_path):
    result = _train(tiny_corpus, tmp_path / "run", max_steps=60)
    losses = _step_losses(tmp_path / "run")
    assert losses[60] < 0.5 * losses[1]
    history = result.state.history
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert {"val_loss", "val_bpc", "val_ppl"} <= history[-1].keys()
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()


def test_checkpoint_reloads_with_identical_logits(tmp_path):
    torch.manual_seed(3)
    model = LanguageModel(LanguageModelConfig(vocab_size=13, hidden_size=24, num_layers=2, cell="gru")).eval()
    from charrnn.vocab import Vocab

    vocab = Vocab.build_char("abcdefghijklm")
    path = tmp_path / "model.pt"
    save_checkpoint(Checkpoint("language_model", {"model_config": {**model.config.__dict__}, "vocab": vocab.to_dict()},
                               model.state_dict()), path)
    loaded, loaded_vocab, _ = load_language_model(path, device="cpu")
    x = torch.randint(0, 13, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=0, atol=0)
    assert loaded_vocab.decode(loaded_vocab.encode("cab")) == "cab"
    half_path = tmp_path / "half.pt"
    save_checkpoint(load_checkpoint(path).for_inference(half=True), half_path)
    assert half_path.stat().st_size < path.stat().st_size
    half_model, _, _ = load_language_model(half_path, device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(half_model(x)[0], model(x)[0], rtol=0, atol=2e-2)


def test_resume_after_ctrl_c_gives_the_same_losses(tiny_corpus, tmp_path):
    straight = tmp_path / "straight"
    _train(tiny_corpus, straight, max_steps=24)

    interrupted = tmp_path / "interrupted"

    def ctrl_c_at_step_13(event):
        if isinstance(event, StepEvent) and event.step == 13:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, handled between steps

    train = TrainConfig(eval_every=10, warmup_steps=5, learning_rate=1e-2, max_steps=24)
    result = train_language_model(str(tiny_corpus), model_config=SMALL_MODEL, data=LanguageDataConfig(**SMALL_DATA),
                                  train=train, run_dir=interrupted, device="cpu", precision="fp32",
                                  on_event=ctrl_c_at_step_13)
    assert result.stop_reason is StopReason.INTERRUPTED and result.state.step == 13
    resumed = train_language_model(str(tiny_corpus), resume=str(interrupted), device="cpu", precision="fp32")
    assert resumed.state.step == 24 and resumed.stop_reason is StopReason.MAX_STEPS
    ends = [json.loads(line) for line in (interrupted / "log.jsonl").read_text().splitlines() if '"end"' in line]
    assert [e["reason"] for e in ends] == ["interrupted", "max_steps"]  # the log keeps the plain words

    want, got = _step_losses(straight), _step_losses(interrupted)
    assert sorted(got) == list(range(1, 25))
    assert [got[s] for s in range(1, 25)] == [want[s] for s in range(1, 25)]  # bit for bit
    a = load_checkpoint(straight / "last.pt").model_state
    b = load_checkpoint(interrupted / "last.pt").model_state
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_atomic_save_survives_a_crash_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(Checkpoint("t", {}, {"value": torch.arange(5)}), path)
    real_save = torch.save

    def crash_halfway(obj, handle):
        real_save(obj, handle)
        handle.truncate(10)  # a torn write...
        raise OSError("disk vanished")  # ...then the process dies

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError):
        save_checkpoint(Checkpoint("t", {}, {"value": torch.arange(9)}), path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path).model_state["value"], torch.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary left behind


def test_bad_checkpoints_get_clear_errors(tmp_path):
    with pytest.raises(CharrnnError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CharrnnError, match="cannot be read"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CharrnnError, match="not a charrnn checkpoint"):
        load_checkpoint(foreign)
    other_task = tmp_path / "other.pt"
    save_checkpoint(Checkpoint("translator", metadata={}, model_state={}), other_task)
    with pytest.raises(CharrnnError, match="translator"):
        load_checkpoint(other_task, task="language_model")


def test_checkpoint_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "charrnn", "format_version": 1, "x": Evil()}, path)
    with pytest.raises(CharrnnError):
        load_checkpoint(path)


def test_time_budget_stops_and_fits_the_schedule(tiny_corpus, tmp_path):
    result = _train(tiny_corpus, tmp_path / "run", time_budget=3.0, patience=None)
    assert result.stop_reason == "time_budget"
    assert 2.0 < result.state.elapsed < 6.0
    # The schedule was fitted to the budget: the learning rate ended near its floor.
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    last_lr = [e["lr"] for e in events if e["event"] == "step"][-1]
    assert last_lr < 0.3 * 1e-2


def test_early_stopping(tiny_corpus, tmp_path):
    # A huge learning rate cannot improve on its first evaluation for long.
    result = _train(tiny_corpus, tmp_path / "run", max_steps=400, patience=2, learning_rate=5.0, eval_every=5)
    assert result.stop_reason in (StopReason.EARLY_STOPPING, StopReason.DIVERGED)
    assert result.state.step < 400


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(learning_rate=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate_at(0, cfg, 100) == pytest.approx(0.1)
    assert learning_rate_at(9, cfg, 100) == pytest.approx(1.0)
    assert learning_rate_at(55, cfg, 100) == pytest.approx(0.55)
    assert learning_rate_at(100, cfg, 100) == pytest.approx(0.1)


def test_invalid_training_options(tiny_corpus, tmp_path):
    with pytest.raises(UsageError, match="--lr"):
        _train(tiny_corpus, tmp_path / "a", max_steps=5, learning_rate=-1)
    with pytest.raises(UsageError, match="--val-frac"):
        train_language_model(str(tiny_corpus), data=LanguageDataConfig(val_frac=0), train=TrainConfig(max_steps=1),
                             run_dir=tmp_path / "b", device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_checkpoint_loads_on_cpu(tiny_corpus, tmp_path):
    train = TrainConfig(eval_every=10, warmup_steps=5, max_steps=10)
    train_language_model(str(tiny_corpus), model_config=SMALL_MODEL, data=LanguageDataConfig(**SMALL_DATA),
                         train=train, run_dir=tmp_path / "gpu", device="cuda", precision="bf16")
    model, vocab, _ = load_language_model(tmp_path / "gpu" / "best.pt", device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    resumed = train_language_model(str(tiny_corpus), resume=str(tmp_path / "gpu"), train=TrainConfig(max_steps=15),
                                   device="cpu", precision="fp32")
    assert resumed.state.step == 15


def test_checkpoint_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint(Checkpoint("t", {}, {}), tmp_path / "ckpt.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "ckpt.pt").stat().st_mode & 0o777 == 0o644


class ScriptedTask:
    """A task whose evaluations return figures from a script, by the step the model's weights
    come from (a buffer saved with them) and by whether the evaluation is partial."""

    name = "scripted"
    steps_per_epoch = 1000

    def __init__(self, partial: dict, whole: dict):
        self.model = torch.nn.Linear(2, 1)
        self.model.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))
        self.partial, self.whole = partial, whole

    def training_loss(self, model, device):
        model.trained_steps += 1
        return model(torch.ones(1, 2)).pow(2).sum(), 1

    def evaluate(self, model, device, max_tokens=None):
        step = int(model.trained_steps)
        if max_tokens is None:
            return {"val_loss": self.whole.get(step, 9.0), "val_fraction": 1.0}
        return {"val_loss": self.partial.get(step, 9.0), "val_fraction": 0.25}

    def data_state(self):
        return {}

    def load_data_state(self, state):
        pass

    def checkpoint_fields(self):
        return {"task": "scripted"}


@pytest.mark.parametrize("whole_prefers_final", [True, False])
def test_partial_evaluations_choose_best_and_the_whole_split_settles_it(tmp_path, whole_prefers_final):
    from charrnn.train import Trainer, best_record

    # Partial figures rank step 2 above the final step 4; the whole split may disagree.
    whole = {2: 1.0, 4: 0.9 if whole_prefers_final else 1.1}
    task = ScriptedTask(partial={2: 1.0, 4: 1.05}, whole=whole)
    config = TrainConfig(learning_rate=1e-3, weight_decay=0.1, min_lr_ratio=0.1, warmup_steps=1, eval_every=2, eval_tokens=10, max_steps=4, patience=None)
    result = Trainer(task, config, tmp_path, device=torch.device("cpu")).run()
    assert result.final_metrics["val_fraction"] == 1.0 and result.final_metrics["val_loss"] == whole[4]
    best = load_checkpoint(tmp_path / "best.pt")
    kept_step = 4 if whole_prefers_final else 2
    assert result.state.best_step == kept_step and int(best.model_state["trained_steps"]) == kept_step
    # What the summary reports for the best model is its whole-split figure, in the file too.
    assert best_record(result.state.history, kept_step)["val_loss"] == whole[kept_step]
    assert best_record(best.train_state["history"], kept_step)["val_loss"] == whole[kept_step]


@pytest.mark.parametrize("make, fragment", [
    (lambda: LanguageModelConfig(vocab_size=5, cell="transformer"), "--cell"),
    (lambda: LanguageModelConfig(vocab_size=5, dropout=1.5), "--dropout"),
    (lambda: TranslatorConfig(source_vocab_size=5, target_vocab_size=5, hidden_size=7), "--hidden-size"),
    (lambda: TranslatorConfig(source_vocab_size=5, target_vocab_size=5, attention="psychic"), "--attention"),
    (lambda: ClassifierConfig(vocab_size=5, num_classes=2, pooling="psychic"), "--pooling"),
    (lambda: ClassifierConfig(vocab_size=5, num_classes=2, num_layers=0), "layers"),
])
def test_a_bad_model_option_is_the_projects_error_from_python_too(make, fragment):
    with pytest.raises(UsageError, match=fragment):
        make()


def test_a_bad_model_option_fails_before_any_data_is_read(tmp_path):
    from charrnn.classify.task import train_classifier

    # The data file does not exist: the option error must come first, and no run folder be made.
    with pytest.raises(UsageError, match="--pooling"):
        train_classifier([str(tmp_path / "missing.tsv")], model_config={"pooling": "psychic"}, run_dir=tmp_path / "run")
    with pytest.raises(UsageError, match="--cell"):
        train_language_model(str(tmp_path / "missing.txt"), model_config={"cell": "transformer"}, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_each_task_describes_its_own_metrics():
    from charrnn.tasks import describe_metrics

    assert describe_metrics("language_model", {"val_loss": 1.5, "val_bpc": 2.16, "val_ppl": 4.48}) == \
        "1.5000 nats/token, 2.1600 bpc, perplexity 4.48"
    assert describe_metrics("translator", {"val_loss": 1.64, "val_ppl": 5.16}) == "1.6400 nats/token, perplexity 5.16"
    assert describe_metrics("classifier", {"val_loss": 0.43, "val_accuracy": 0.8171, "val_macro_f1": 0.817}) == \
        "loss 0.4300, accuracy 81.71%, macro-F1 81.70%"
    assert describe_metrics("someone_elses_task", {"val_loss": 0.5}) == "loss 0.5000"
    assert describe_metrics("classifier", {}) == "no evaluation"


def test_events_are_typed_and_the_log_keeps_their_fields(tiny_corpus, tmp_path):
    from charrnn.events import EndEvent, EvalEvent, StartEvent

    events = []
    train = TrainConfig(time_budget=1.0, eval_every=10, warmup_steps=5, learning_rate=1e-2, weight_decay=0.1)
    train_language_model(str(tiny_corpus), model_config=SMALL_MODEL, data=LanguageDataConfig(**SMALL_DATA), train=train,
                         run_dir=tmp_path / "run", device="cpu", precision="fp32", on_event=events.append)
    start, end = events[0], events[-1]
    # A time-budget run does not know its length before it has measured its speed: None, not a magic number.
    assert isinstance(start, StartEvent) and start.total_steps is None
    assert isinstance(end, EndEvent) and end.reason is StopReason.TIME_BUDGET
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[-1].total_steps is not None and steps[-1].step == end.step
    assert any(isinstance(e, EvalEvent) and "val_bpc" in e.record for e in events)
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in logged] == [e.kind for e in events]
    assert logged[0]["total_steps"] is None and "settings" not in logged[0]
    assert logged[-1] == {"event": "end", "step": end.step, "reason": "time_budget", "elapsed": end.elapsed,
                          "best_val_loss": end.best_val_loss, "best_step": end.best_step}
