"""Device choice (auto, cpu, cuda, mps) and mixed-precision autocast, in one place."""

from __future__ import annotations

import contextlib
import functools

import torch

from .errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES = ("auto", "fp32", "bf16")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a --device value into a torch.device; auto prefers CUDA, then the CPU.

    MPS is used only when asked for: its LSTM kernels are slower than the CPU's for small models.
    """
    if name not in DEVICE_CHOICES:
        raise UsageError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UsageError("--device mps was asked for but MPS is not available; use --device cpu")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has AMX tile units, where oneDNN runs bf16 LSTM training about 2.5x
    faster than fp32. AVX512-BF16 alone is not enough: on such a CPU (AMX hidden by the
    hypervisor) bf16 training measured 0.7x the speed of fp32, for the LSTM language model and
    the GRU translator alike."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(check is not None and check())
    except RuntimeError:  # the probe may fail on exotic builds; treat it as "no"
        return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """Return the autocast dtype for a --precision value, or None for plain fp32."""
    if name not in PRECISION_CHOICES:
        raise UsageError(f"unknown precision {name!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    if name == "fp32":
        return None
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        supported = cpu_has_fast_bf16()
    else:
        supported = False
    if name == "bf16" and not supported:
        if device.type == "cpu":
            # Emulated bf16 is correct, only slow: honour an explicit request.
            return torch.bfloat16
        raise UsageError(f"bf16 is not supported on {device.type}; use --precision fp32")
    return torch.bfloat16 if supported else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for the device, or a no-op one when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def start_device(device: torch.device, amp_dtype: torch.dtype | None = None) -> None:
    """Pay a CUDA device's one-off start-up before anything is timed: the context and the cuBLAS
    and cuDNN handles are the process's cost, not training's, so they stay out of a --time-budget.
    (Each new batch shape's own kernel set-up is a cost of training: the probe counts it, see
    adaptive.probe_step_costs.) A no-op on the CPU, and after the first call."""
    if device.type == "cuda":
        _start_cuda(str(device), amp_dtype)


@functools.cache
def _start_cuda(device: str, amp_dtype: torch.dtype | None) -> None:
    from .cells import Recurrent, RecurrentConfig

    layer = Recurrent(RecurrentConfig(cell="lstm", input_size=8, hidden_size=8, num_layers=1)).to(device)
    x = torch.randn(2, 4, 8, device=device)
    with autocast(torch.device(device), amp_dtype):
        out, _ = layer(x)
        loss = (out.float() @ torch.ones(8, 1, device=device)).sum()
    loss.backward()
    torch.cuda.synchronize(device)
