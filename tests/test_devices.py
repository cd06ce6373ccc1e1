"""Device and precision choice behave on a machine with or without a GPU."""

import pytest
import torch

from charrnn.devices import autocast, resolve_device, resolve_precision
from charrnn.errors import UsageError


def test_auto_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_missing_gpu_is_a_clear_error():
    with pytest.raises(UsageError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_unknown_device_and_precision():
    with pytest.raises(UsageError, match="tpu"):
        resolve_device("tpu")
    with pytest.raises(UsageError, match="fp8"):
        resolve_precision("fp8", torch.device("cpu"))


def test_precision_choices():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) == torch.bfloat16  # honoured even where bf16 is emulated
    assert resolve_precision("auto", cpu) in (None, torch.bfloat16)


def test_autocast_runs_matmuls_in_the_chosen_dtype():
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), None):
        assert (a @ a).dtype == torch.float32


@pytest.mark.parametrize("amx,avx512_bf16,expected", [(True, True, torch.bfloat16), (False, True, None), (False, False, None)])
def test_auto_precision_uses_bf16_on_the_cpu_only_with_amx(monkeypatch, amx, avx512_bf16, expected):
    # AVX512-BF16 without AMX runs bf16 training slower than fp32 (measured), so it must not count.
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert resolve_precision("auto", torch.device("cpu")) == expected
