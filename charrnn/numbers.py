"""The checks every number from a user goes through, in one place: a float must be finite (a NaN
passes every `<` test and then samples nonsense), and a seed must fit the 64-bit random-number
generators (a larger one overflows inside torch)."""

from __future__ import annotations

import math

from .errors import UsageError

SEED_MAX = 2**63 - 1  # torch.manual_seed and torch.Generator take a signed 64-bit seed


def check_finite(value: float | None, option: str) -> None:
    """Refuse NaN and infinity (None, meaning unset, passes)."""
    if value is not None and not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, not {value}")


def check_seed(seed: int | None, option: str = "--seed") -> None:
    """Refuse a seed outside 0..2**63-1 (None, meaning a fresh random seed, passes)."""
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise UsageError(f"{option} must be between 0 and {SEED_MAX}, not {seed}")
