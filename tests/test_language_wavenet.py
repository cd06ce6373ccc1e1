"""The WaveNet language model (`charrnn train --cell wavenet`): the stack is causal with the receptive
field its formula gives, windows with the carried state read a stream exactly as one pass does,
generation one token at a time agrees with both, and training, checkpoints, exact resume, sampling
from the command line and option errors work as they do for the recurrent cells."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from charrnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from charrnn.errors import UsageError
from charrnn.events import StepEvent
from charrnn.language.model import LanguageModel, LanguageModelConfig
from charrnn.language.sampling import SamplingConfig, generate
from charrnn.language.task import LanguageDataConfig, load_language_model, train_language_model
from charrnn.train import StopReason, TrainConfig
from charrnn.vocab import Vocab
from charrnn.wavenet import WaveNet, WaveNetConfig

SMALL_MODEL = dict(cell="wavenet", hidden_size=16, num_layers=4, dropout=0.1)  # receptive field 16
SMALL_DATA = dict(batch_size=8, seq_len=32)


def _model(vocab_size=11, **options):
    torch.manual_seed(0)
    return LanguageModel(LanguageModelConfig(vocab_size=vocab_size, **{"cell": "wavenet", "hidden_size": 16,
                                                                         "num_layers": 5, **options})).eval()


def _train(corpus, run_dir, model=SMALL_MODEL, precision="fp32", **train_kwargs):
    train = TrainConfig(**{"eval_every": 10, "warmup_steps": 5, "learning_rate": 1e-2, **train_kwargs})
    return train_language_model(str(corpus), model_config=model, data=LanguageDataConfig(**SMALL_DATA),
                                train=train, run_dir=run_dir, device="cpu", precision=precision)


def _step_losses(run_dir):
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {e["step"]: e["loss"] for e in events if e["event"] == "step"}


# -- the stack ---------------------------------------------------------------------------------


def test_the_stack_is_causal_and_reads_exactly_its_receptive_field():
    torch.manual_seed(0)
    net = WaveNet(WaveNetConfig(input_size=3, channels=8, layers_per_stack=4)).eval()  # R = 16
    R = net.config.receptive_field
    x = torch.randn(1, 60, 3, dtype=torch.float64)
    net.double()
    t = 30
    changed = x.clone()
    changed[0, t] += 1.0
    with torch.no_grad():
        moved = (net(changed)[0] - net(x)[0]).abs().amax(dim=-1)[0]  # (T,)
    assert moved[:t].max() == 0  # nothing before t sees it
    assert (moved[t : t + R] > 0).all()  # every output within the receptive field does
    assert moved[t + R :].max() == 0  # and none beyond it


@pytest.mark.parametrize("kernel_size, layers, stacks", [(2, 1, 1), (2, 5, 1), (3, 3, 1), (2, 3, 2)])
def test_receptive_field_matches_the_formula_and_the_gradient(kernel_size, layers, stacks):
    config = WaveNetConfig(input_size=2, channels=6, kernel_size=kernel_size, layers_per_stack=layers, stacks=stacks)
    assert config.receptive_field == 1 + (kernel_size - 1) * stacks * (2**layers - 1)
    torch.manual_seed(1)
    net = WaveNet(config).double().eval()
    with torch.no_grad():  # ReLUs that are all off for some input would hide its reach: keep them on
        net.output.bias.fill_(10.0)
        for layer in net.layers:
            layer.residual_skip.bias.fill_(10.0)
    x = torch.randn(1, config.receptive_field + 10, 2, dtype=torch.float64, requires_grad=True)
    net(x)[0][0, -1].sum().backward()  # the last output's dependence on every input step
    reached = (x.grad[0].abs().sum(dim=-1) > 0).nonzero().flatten().tolist()
    assert reached == list(range(10, config.receptive_field + 10))


def test_the_language_model_defaults_to_a_useful_receptive_field():
    assert LanguageModelConfig(vocab_size=5, cell="wavenet").num_layers == 8
    assert LanguageModelConfig(vocab_size=5, cell="wavenet").receptive_field == 256
    assert LanguageModelConfig(vocab_size=5, cell="wavenet", num_layers=3).receptive_field == 8
    lstm = LanguageModelConfig(vocab_size=5)
    assert lstm.num_layers == 2 and lstm.receptive_field is None


def test_no_state_is_a_zero_state_of_each_layers_reach():
    torch.manual_seed(2)
    net = WaveNet(WaveNetConfig(input_size=4, channels=8, kernel_size=3, layers_per_stack=3, stacks=2)).eval()
    x = torch.randn(2, 40, 4)
    with torch.no_grad():
        out, state = net(x)
        torch.testing.assert_close(out, net(x, net.init_state(2))[0], rtol=0, atol=0)
    assert [tuple(part.shape) for part in state] == [(2 * d, 2, 8) for d in net.config.dilations]


# -- the carried state -------------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 3, 16, 64])
def test_windows_with_the_carried_state_read_the_stream_as_one_pass(window):
    model = _model()  # receptive field 32: windows shorter and longer than the largest dilation
    x = torch.randint(0, 11, (3, 100))
    with torch.no_grad():
        whole, _, _ = model(x)
        state, pieces = model.init_state(3), []
        for start in range(0, 100, window):
            logits, state, _ = model(x[:, start : start + window], state)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-5)


def test_a_step_agrees_with_the_whole_sequence():
    model = _model()
    x = torch.randint(0, 11, (2, 70))
    stepper = model.stepper()
    with torch.no_grad():
        whole, _, _ = model(x)
        state, steps = stepper.split_state(model.init_state(2)), []
        for t in range(70):
            logits, state = stepper.step(x[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), whole, rtol=0, atol=1e-5)
    # A kernel wider than 2 reads several taps from the state.
    torch.manual_seed(3)
    net = WaveNet(WaveNetConfig(input_size=4, channels=8, kernel_size=3, layers_per_stack=3)).eval()
    x = torch.randn(2, 30, 4)
    with torch.no_grad():
        whole, _ = net(x)
        step, state, outputs = net.stepper(), net.init_state(2), []
        for t in range(30):
            out, state = step.step(x[:, t], state)
            outputs.append(out)
    torch.testing.assert_close(torch.stack(outputs, dim=1), whole, rtol=0, atol=1e-5)


def test_greedy_generation_follows_the_full_sequence_model():
    model = _model()
    ids = list(generate(model, [1, 2, 3], 40, SamplingConfig(temperature=0), torch.Generator().manual_seed(0)))
    seq = [1, 2, 3]
    for token in ids:  # each choice recomputed by one pass over everything before it
        with torch.no_grad():
            logits, _, _ = model(torch.tensor([seq]))
        assert token == int(logits[0, -1].argmax())
        seq.append(token)


# -- training, checkpoints, resume -------------------------------------------------------------


def test_loss_falls_when_overfitting(tiny_corpus, tmp_path):
    result = _train(tiny_corpus, tmp_path / "run", max_steps=60)
    losses = _step_losses(tmp_path / "run")
    assert losses[60] < 0.5 * losses[1]
    history = result.state.history
    assert history[-1]["val_loss"] < history[0]["val_loss"] and history[-1]["val_bpc"] < 1.0
    saved = load_checkpoint(tmp_path / "run" / "best.pt")
    assert saved.metadata["model_config"]["cell"] == "wavenet" and saved.metadata["model_config"]["num_layers"] == 4


def test_checkpoint_reloads_with_identical_logits(tmp_path):
    model = _model(vocab_size=13, embedding_size=12)
    vocab = Vocab.build_char("abcdefghijklm")
    path = tmp_path / "model.pt"
    save_checkpoint(Checkpoint("language_model", {"model_config": {**model.config.__dict__}, "vocab": vocab.to_dict()},
                               model.state_dict()), path)
    loaded, _, _ = load_language_model(path, device="cpu")
    assert loaded.config == model.config
    x = torch.randint(0, 13, (2, 50))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=0, atol=0)


def test_recurrent_checkpoints_of_earlier_versions_still_load():
    # The bundled model was saved before --cell wavenet existed: its config and weight names hold.
    model, vocab, saved = load_language_model("shakespeare", device="cpu")
    assert saved.metadata["model_config"]["cell"] == "lstm" and model.config.receptive_field is None
    assert any(name.startswith("recurrent.") for name in saved.model_state)


def test_resume_after_ctrl_c_gives_the_same_losses(tiny_corpus, tmp_path):
    # Dropout on: the resumed run must also restore the random state its masks are drawn from,
    # and the carried state (each layer's last inputs) must come back from last.pt.
    straight = tmp_path / "straight"
    _train(tiny_corpus, straight, max_steps=24)

    def ctrl_c_at_step_13(event):
        if isinstance(event, StepEvent) and event.step == 13:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, handled between steps

    interrupted = tmp_path / "interrupted"
    train = TrainConfig(eval_every=10, warmup_steps=5, learning_rate=1e-2, max_steps=24)
    result = train_language_model(str(tiny_corpus), model_config=SMALL_MODEL, data=LanguageDataConfig(**SMALL_DATA),
                                  train=train, run_dir=interrupted, device="cpu", precision="fp32",
                                  on_event=ctrl_c_at_step_13)
    assert result.stop_reason is StopReason.INTERRUPTED and result.state.step == 13
    hidden = load_checkpoint(interrupted / "last.pt").resume["data"]["hidden"]
    assert [tuple(part.shape) for part in hidden] == [(d, 8, 16) for d in (1, 2, 4, 8)]
    resumed = train_language_model(str(tiny_corpus), resume=str(interrupted), device="cpu", precision="fp32")
    assert resumed.state.step == 24 and resumed.stop_reason is StopReason.MAX_STEPS

    want, got = _step_losses(straight), _step_losses(interrupted)
    assert [got[s] for s in range(1, 25)] == [want[s] for s in range(1, 25)]  # bit for bit
    a = load_checkpoint(straight / "last.pt").model_state
    b = load_checkpoint(interrupted / "last.pt").model_state
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_a_bf16_run_resumes_in_fp32(tiny_corpus, tmp_path):
    # Under autocast the carried state is bf16; an fp32 session must take it as its own.
    _train(tiny_corpus, tmp_path / "run", precision="bf16", max_steps=5)
    resumed = train_language_model(str(tiny_corpus), resume=str(tmp_path / "run"), train=TrainConfig(max_steps=8),
                                   device="cpu", precision="fp32")
    assert resumed.state.step == 8 and resumed.final_metrics["val_loss"] < 5.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_run_samples_and_resumes_on_cpu(tiny_corpus, tmp_path):
    from charrnn.language.task import sample_text

    train_language_model(str(tiny_corpus), model_config=SMALL_MODEL, data=LanguageDataConfig(**SMALL_DATA),
                         train=TrainConfig(eval_every=10, warmup_steps=5, max_steps=10), run_dir=tmp_path / "gpu",
                         device="cuda", precision="bf16")
    for device in ("cuda", "cpu"):
        model, vocab, _ = load_language_model(tmp_path / "gpu" / "best.pt", device=device)
        assert len("".join(sample_text(model, vocab, prime="the ", length=30, seed=1))) == 30
    resumed = train_language_model(str(tiny_corpus), resume=str(tmp_path / "gpu"), train=TrainConfig(max_steps=15),
                                   device="cpu", precision="fp32")
    assert resumed.state.step == 15


# -- the command line --------------------------------------------------------------------------


def _run(*args, cwd):
    env = {**os.environ, "CHARRNN_CACHE": str(cwd / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "charrnn", *args], cwd=cwd, capture_output=True, env=env, timeout=120)


def test_train_sample_and_info_on_the_command_line(tiny_corpus, tmp_path):
    # --num-layers left out: the WaveNet's own default (8), not the recurrent one (2).
    trained = _run("train", str(tiny_corpus), "--cell", "wavenet", "--hidden-size", "16", "--max-steps", "30", "-b", "8",
                   "--seq-len", "32", "--lr", "0.01", "--warmup-steps", "3", "--eval-every", "15", "--dropout", "0",
                   "--weight-decay", "0.1", "--precision", "fp32", "--run-dir", "run", "-q", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr.decode()
    info = _run("info", "run", "--json", cwd=tmp_path)
    assert info.returncode == 0, info.stderr.decode()
    config = json.loads(info.stdout)["model_config"]
    assert {**config, "vocab_size": None} == {"vocab_size": None, "cell": "wavenet", "hidden_size": 16, "num_layers": 8,
                                              "embedding_size": None, "dropout": 0.0, "conditions": [], "condition_at": "every",
                                              "condition_token": None, "condition_size": 0, "condition_mean": [],
                                              "condition_scale": []}
    args = ("sample", "-c", "run", "-n", "120", "--seed", "3", "--prime", "the ", "--json")
    a, b = _run(*args, cwd=tmp_path), _run(*args, cwd=tmp_path)
    assert a.returncode == 0, a.stderr.decode()
    assert a.stdout == b.stdout and a.stderr == b""
    sample = json.loads(a.stdout)
    assert sample["text"].startswith("the ") and len(sample["text"]) == len("the ") + 120
    other = _run("sample", "-c", "run", "-n", "120", "--seed", "4", "--prime", "the ", "--json", cwd=tmp_path)
    assert json.loads(other.stdout)["text"] != sample["text"]


@pytest.mark.parametrize("options, fragment", [
    (["--cell", "wavenet", "--num-layers", "17"], "1 to 16 dilated layers, not 17"),
    (["--cell", "wavenet", "--hidden-size", "5000"], "--hidden-size (a WaveNet's channels)"),
    (["--cell", "wavenet", "--embedding-size", "0"], "--embedding-size"),
    (["--cell", "transformer"], "choose one of rnn, lstm, gru, wavenet"),
])
def test_bad_options_are_one_line_errors(tmp_path, options, fragment):
    # The corpus does not exist: the option error must come first.
    proc = _run("train", "missing.txt", *options, cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("charrnn: error:") and fragment in err, err
    assert not (tmp_path / "checkpoints").exists()


def test_bad_options_from_python_are_the_same_error():
    with pytest.raises(UsageError, match="dilated layers"):
        LanguageModelConfig(vocab_size=5, cell="wavenet", num_layers=0)
    with pytest.raises(UsageError, match="--dropout"):
        LanguageModelConfig(vocab_size=5, cell="wavenet", dropout=1.0)
