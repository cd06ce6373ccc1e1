"""The checks every number from a user goes through, in one place: a float must be finite (a NaN
passes every `<` test and then samples nonsense), and a seed must fit the 64-bit random-number
generators (a larger one overflows inside torch)."""

from __future__ import annotations

import math

from .errors import UsageError

SEED_MAX = 2**63 - 1  # torch.manual_seed and torch.Generator take a signed 64-bit seed


def check_finite(value: float | None, option: str) -> None:
    """Refuse NaN and infinity (None, meaning unset, passes)."""
    if value is None or isinstance(value, int):  # an int is finite (and may be too large for a float)
        return
    if not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, not {value}")


def check_seed(seed: int | None, option: str = "--seed") -> None:
    """Refuse a seed outside 0..2**63-1 (None, meaning a fresh random seed, passes)."""
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise UsageError(f"{option} must be between 0 and {SEED_MAX}, not {seed}")


def check_range(value: float | None, option: str, low: float | None = None, high: float | None = None) -> None:
    """Refuse a value below low or above high (either bound may be left out; None, meaning unset,
    passes). The upper bounds are where a larger value can only exhaust memory or overflow a
    kernel's arguments, never give a better result."""
    if value is None:
        return
    check_finite(value, option)
    if low is not None and high is not None and not low <= value <= high:
        raise UsageError(f"{option} must be between {low:,} and {high:,}, not {value}")
    if low is not None and value < low:
        raise UsageError(f"{option} must be at least {low:,}, not {value}")
    if high is not None and value > high:
        raise UsageError(f"{option} must be at most {high:,}, not {value}")
