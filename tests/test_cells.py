"""The fused recurrent layers compute what the reference gate equations say."""

import itertools

import pytest
import torch

from charrnn.cells import CELL_TYPES, Recurrent, RecurrentConfig, reference_forward
from charrnn.errors import UsageError

SHAPES = list(itertools.product(CELL_TYPES, (1, 3), (False, True)))


def _layer(cell, num_layers, bidirectional, input_size=5, hidden_size=7):
    torch.manual_seed(0)
    layer = Recurrent(RecurrentConfig(cell=cell, input_size=input_size, hidden_size=hidden_size,
                                      num_layers=num_layers, dropout=0.3, bidirectional=bidirectional))
    # Random weights well away from the default init, so every gate matters.
    with torch.no_grad():
        for p in layer.parameters():
            p.uniform_(-0.8, 0.8)
    return layer.eval()


@pytest.mark.parametrize("cell,num_layers,bidirectional", SHAPES)
def test_fused_matches_reference(cell, num_layers, bidirectional):
    layer = _layer(cell, num_layers, bidirectional)
    x = torch.randn(3, 6, 5)
    state = tuple(torch.randn_like(s) for s in layer.init_state(3))
    fused_out, fused_state = layer(x, state)
    ref_out, ref_state = reference_forward(layer, x, state)
    assert fused_out.shape == (3, 6, 7 * (2 if bidirectional else 1))
    torch.testing.assert_close(fused_out, ref_out, atol=1e-5, rtol=0)
    assert len(fused_state) == (2 if cell == "lstm" else 1)
    for got, want in zip(fused_state, ref_state):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELL_TYPES)
@pytest.mark.parametrize("with_table", [False, True])
def test_stepper_matches_forward(cell, with_table):
    layer = _layer(cell, 2, False)
    table = torch.randn(9, 5)  # an embedding matrix: the stepper takes token ids
    tokens = torch.randint(0, 9, (2, 5))
    x = table[tokens]
    out, final = layer(x)
    stepper = layer.stepper(input_table=table if with_table else None)
    layer_states = stepper.split_state(layer.init_state(2))
    for t in range(5):
        h, layer_states = stepper.step(tokens[:, t] if with_table else x[:, t], layer_states)
        torch.testing.assert_close(h, out[:, t], atol=1e-5, rtol=0)
    for got, want in zip(stepper.join_state(layer_states), final):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_stepper_refuses_bidirectional():
    layer = _layer("gru", 1, True)
    with pytest.raises(ValueError):
        layer.stepper()


@pytest.mark.parametrize("cell,bidirectional", [("lstm", True), ("gru", False), ("rnn", True)])
def test_padding_never_changes_results(cell, bidirectional):
    layer = _layer(cell, 2, bidirectional)
    lengths = torch.tensor([4, 2, 3])
    padded = torch.randn(3, 6, 5)
    out, state = layer(padded, lengths=lengths)
    for row, n in enumerate(lengths.tolist()):
        alone, alone_state = layer(padded[row : row + 1, :n])
        torch.testing.assert_close(out[row : row + 1, :n], alone, atol=1e-5, rtol=0)
        assert torch.all(out[row, n:] == 0)
        for got, want in zip(state, alone_state):
            torch.testing.assert_close(got[:, row : row + 1], want, atol=1e-5, rtol=0)
    # Garbage in the padding must not leak into anything.
    noisy = padded.clone()
    noisy[0, 4:] = 100.0
    out2, _ = layer(noisy, lengths=lengths)
    torch.testing.assert_close(out, out2)


def test_dropout_between_layers_only_in_training():
    layer = _layer("lstm", 2, False)
    x = torch.randn(2, 4, 5)
    a, _ = layer(x)
    b, _ = layer(x)
    torch.testing.assert_close(a, b)
    layer.train()
    torch.manual_seed(1)
    c, _ = layer(x)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("cell", CELL_TYPES)
def test_a_bf16_state_continues_in_fp32(cell):
    # What a run resumed with another --precision does: autocast left its carried state in bf16.
    layer = _layer(cell, 2, False)
    x = torch.randn(2, 4, 5)
    state = tuple(part.to(torch.bfloat16) for part in layer.init_state(2))
    out, new_state = layer(x, state)
    reference, _ = layer(x, layer.init_state(2))
    torch.testing.assert_close(out, reference)  # zeros are exact in bf16
    assert all(part.dtype == torch.float32 for part in new_state)


def test_unknown_cell_is_rejected():
    with pytest.raises(UsageError, match="--cell"):
        RecurrentConfig(cell="transformer")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell", CELL_TYPES)
def test_cudnn_matches_cpu(cell):
    layer = _layer(cell, 2, True)
    x = torch.randn(3, 6, 5)
    cpu_out, _ = layer(x)
    gpu = layer.to("cuda")
    gpu.flatten_parameters()
    # cuDNN computes RNNs in TF32 by default on GPUs that have it (differences near 1e-3): compare
    # the fp32 kernel, which is what this test is about.
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        gpu_out, _ = gpu(x.cuda())
    torch.testing.assert_close(gpu_out.cpu(), cpu_out, atol=1e-4, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cudnn_takes_a_strided_state():
    # A slice of the streams' state (as evaluation's one-row tail takes) is not contiguous.
    layer = _layer("lstm", 2, False).to("cuda")
    state = tuple(part[:, -1:] for part in layer.init_state(3, torch.device("cuda")))
    assert not state[0].is_contiguous()
    out, _ = layer(torch.randn(1, 4, 5, device="cuda"), state)
    assert out.shape == (1, 4, layer.config.hidden_size)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell", CELL_TYPES)
def test_stepper_on_cuda_matches_the_cpu(cell):
    # The CUDA cell functions are fused kernels of their own; the zero-width input of layer 0
    # (its projection read from the table) must work there too.
    layer = _layer(cell, 2, False)
    table = torch.randn(9, 5)
    tokens = torch.randint(0, 9, (2, 5))
    outputs = []
    for device in ("cpu", "cuda"):
        moved = layer.to(device)
        stepper = moved.stepper(input_table=table.to(device))
        layer_states = stepper.split_state(moved.init_state(2, torch.device(device)))
        for t in range(5):
            h, layer_states = stepper.step(tokens[:, t].to(device), layer_states)
        outputs.append(h.cpu())
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-4, rtol=0)
