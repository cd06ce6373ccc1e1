"""Reading a numeric series: a CSV column (dates found or named, frequency inferred) or one number
a line. Gaps, repeated dates, cells that are not numbers and empty cells are one-line errors with
their line numbers, never filled silently; empty cells are filled only when asked (fill)."""

from __future__ import annotations

import calendar
import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ..errors import CharrnnError, UsageError

FILL_METHODS = ("previous", "linear")
# The largest magnitude of a value: beyond it the squares that RMSE and the classical model's fit
# sum, and the changes between values, overflow float64 (1e308) into inf and NaN. Real series stay
# far below it (amounts in wei, among the largest, reach about 1e27).
MAX_MAGNITUDE = 1e150
# Date formats tried in order; the first that reads every date of the column wins.
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d",
                "%d/%m/%Y", "%m/%d/%Y", "%Y")
DATE_NAMES = ("date", "time", "timestamp", "datetime", "month", "day", "ds", "period")


@dataclass
class Series:
    """A series of values, oldest first. dates: one per value (None for a series read without
    dates). frequency: "hourly", "daily", "weekly", "monthly", "quarterly" or "yearly" (None
    without dates). name: what the values are (the column name)."""

    values: np.ndarray  # (N,) float64
    dates: list[datetime] | None
    frequency: str | None
    name: str

    def __len__(self) -> int:
        return len(self.values)


def read_series(path: str | Path, *, column: str | None = None, date_column: str | None = None,
                fill: str | None = None, text: str | None = None) -> Series:
    """A series from a CSV file (or its text): the value column (named, or the only numeric
    column besides the dates) and the date column (named, or found by its name or contents).
    A file with a single column and no header is read as one number a line."""
    if fill is not None and fill not in FILL_METHODS:
        raise UsageError(f"unknown --fill {fill!r}; choose one of {', '.join(FILL_METHODS)}")
    label = str(path) if path else "stdin"
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise CharrnnError(f"series file {path} does not exist") from None
        except IsADirectoryError:
            raise CharrnnError(f"series file {path} is a folder; give a CSV file") from None
        except UnicodeDecodeError as exc:
            raise CharrnnError(f"series file {path} is not utf-8 text ({exc.reason})") from None
        except OSError as exc:
            raise CharrnnError(f"cannot read series file {path}: {exc.strerror or exc}") from None
    # Universal newlines: text from stdin keeps the \r line ends that reading a file translates.
    reader = csv.reader(io.StringIO(text, newline=None))
    try:
        rows = [(number, row) for number, row in enumerate(reader, 1) if any(cell.strip() for cell in row)]
    except csv.Error as exc:  # a field longer than the csv module's limit, a NUL byte, ...
        raise CharrnnError(f"series {label} line {reader.line_num} does not read as CSV ({exc})") from None
    if not rows:
        raise CharrnnError(f"series {label} is empty")
    header = [cell.strip() for cell in rows[0][1]]
    if len(header) == 1 and _number(header[0]) is not None:
        return read_numbers((row[0] if row else "" for _, row in rows), label=label, fill=fill,
                            numbers=[number for number, _ in rows])
    body = rows[1:]
    if not body:
        if all(_number(cell) is not None for cell in header):  # "1,2,3": numbers on one line
            raise CharrnnError(f"series {label} is one line of numbers ({', '.join(header)}); give one number a line, "
                               "or a CSV with a header row")
        raise CharrnnError(f"series {label} has a header ({', '.join(header)}) and no values")
    if column is None:
        others = [name for name in header if name.lower() not in (*DATE_NAMES, (date_column or "").lower())]
        numeric = others if len(others) == 1 else [name for i, name in enumerate(header)
                                                     if name in others and _mostly_numbers(body, i)]
        if len(numeric) != 1:
            raise UsageError(f"series {label} has the columns {', '.join(header)}; name the one to forecast with --column")
        column = numeric[0]
    value_index = _column_index(header, column, label, "--column")
    date_index = _find_date_column(header, body, date_column, label, exclude=value_index)
    numbers = [number for number, _ in body]
    values = _parse_values([row[value_index] if value_index < len(row) else "" for _, row in body], numbers, label, column, fill)
    if date_index is None:
        return Series(values, None, None, column)
    dates = _parse_dates([row[date_index] if date_index < len(row) else "" for _, row in body], numbers, label, header[date_index])
    frequency = _check_spacing(dates, numbers, label)
    return Series(values, dates, frequency, column)


def read_numbers(lines: Iterable[str], *, label: str = "stdin", fill: str | None = None,
                 numbers: Sequence[int] | None = None) -> Series:
    """One number a line (blank lines skipped): a series without dates."""
    cells, line_numbers = [], []
    for i, line in enumerate(lines):
        if line.strip():
            cells.append(line.strip())
            line_numbers.append(numbers[i] if numbers is not None else i + 1)
    if not cells:
        raise CharrnnError(f"series {label} has no numbers")
    return Series(_parse_values(cells, line_numbers, label, "value", fill), None, None, "value")


# -- values --------------------------------------------------------------------------------------


def _number(cell: str) -> float | None:
    try:
        value = float(cell.strip().replace(",", "")) if cell.strip() else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _mostly_numbers(body, index: int) -> bool:
    cells = [row[index] for _, row in body[:50] if index < len(row) and row[index].strip()]
    return bool(cells) and sum(_number(cell) is not None for cell in cells) >= 0.9 * len(cells)


def _parse_values(cells: Sequence[str], numbers: Sequence[int], label: str, column: str, fill: str | None) -> np.ndarray:
    values = np.empty(len(cells))
    missing = []
    for i, (cell, number) in enumerate(zip(cells, numbers)):
        if not cell.strip() or cell.strip().lower() in ("na", "nan", "null", "none"):
            missing.append(i)
            values[i] = np.nan
            continue
        value = _number(cell)
        if value is None:
            raise CharrnnError(f"series {label} line {number}: {column} is {cell.strip()!r}, not a number")
        if abs(value) > MAX_MAGNITUDE:
            raise CharrnnError(f"series {label} line {number}: {column} is {cell.strip()}, beyond the largest value "
                               f"charrnn forecasts (±{MAX_MAGNITUDE:g}); rescale the series")
        values[i] = value
    if missing:
        if fill is None:
            shown = ", ".join(str(numbers[i]) for i in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise CharrnnError(f"series {label} has {len(missing)} missing value(s) in {column}: line {shown}; "
                               f"fill them or pass --fill previous|linear")
        values = _filled(values, fill, label)
    return values


def _filled(values: np.ndarray, fill: str, label: str) -> np.ndarray:
    known = np.flatnonzero(~np.isnan(values))
    if len(known) == 0:
        raise CharrnnError(f"series {label} has no values, only missing ones")
    if fill == "previous":
        if known[0] > 0:
            raise CharrnnError(f"series {label} starts with missing values: nothing before them to carry forward")
        carried = np.maximum.accumulate(np.where(np.isnan(values), 0, np.arange(len(values))))
        return values[carried]
    return np.interp(np.arange(len(values)), known, values[known])  # linear; ends held flat


# -- dates ---------------------------------------------------------------------------------------


def _column_index(header: list[str], name: str, label: str, option: str) -> int:
    lowered = [cell.lower() for cell in header]
    if name.lower() not in lowered:
        raise UsageError(f"series {label} has no column {name!r} ({option}); its columns: {', '.join(header)}")
    return lowered.index(name.lower())


def _find_date_column(header, body, date_column: str | None, label: str, *, exclude: int) -> int | None:
    if date_column is not None:
        return _column_index(header, date_column, label, "--date-column")
    for i, name in enumerate(header):
        if i != exclude and name.lower() in DATE_NAMES:
            return i
    for i in range(len(header)):  # no telling name: a column whose cells read as dates
        sample = [row[i] for _, row in body[:20] if i < len(row)]
        if i != exclude and sample and _date_format(sample) is not None and not _mostly_numbers(body, i):
            return i
    return None


def _date_format(cells: Sequence[str]) -> str | None:
    """The format that reads the first cell and the most of the others, at least half (a bad
    cell further on is then reported by its line, not by failing the whole column)."""
    def reads(cell: str, fmt: str) -> bool:
        try:
            datetime.strptime(cell.strip(), fmt)
        except ValueError:
            return False
        return True

    scores = {fmt: sum(reads(cell, fmt) for cell in cells) for fmt in DATE_FORMATS if cells and reads(cells[0], fmt)}
    best = max(scores, key=scores.get, default=None)
    return best if best is not None and 2 * scores[best] >= len(cells) else None


def _parse_dates(cells: Sequence[str], numbers: Sequence[int], label: str, column: str) -> list[datetime]:
    fmt = _date_format(cells[:50])
    if fmt is None:
        raise CharrnnError(f"series {label}: the {column} column does not read as dates (such as 2024-01-31 or 2024-01)")
    dates = []
    for cell, number in zip(cells, numbers):
        try:
            dates.append(datetime.strptime(cell.strip(), fmt))
        except ValueError:
            raise CharrnnError(f"series {label} line {number}: {column} is {cell.strip()!r}, not a date like the others") from None
    return dates


# The step of each frequency: (months, timedelta); a month-based step ignores the day count.
_STEPS = {"hourly": (0, timedelta(hours=1)), "daily": (0, timedelta(days=1)), "weekly": (0, timedelta(days=7)),
          "monthly": (1, None), "quarterly": (3, None), "yearly": (12, None)}


def _months_between(a: datetime, b: datetime) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def _check_spacing(dates: list[datetime], numbers: Sequence[int], label: str) -> str | None:
    """The frequency (the most common step between dates), after checking that dates only rise,
    never repeat and leave no gap."""
    if len(dates) < 2:
        return None
    seen: dict[datetime, int] = {}
    for when, number in zip(dates, numbers):
        if when in seen:
            raise CharrnnError(f"series {label} line {number}: the date {_show(when)} repeats line {seen[when]}")
        seen[when] = number
    for before, after, number in zip(dates, dates[1:], numbers[1:]):
        if after < before:
            raise CharrnnError(f"series {label} line {number}: {_show(after)} comes after {_show(before)}; "
                               "sort the rows oldest first")
    frequency = max(_STEPS, key=lambda name: sum(_is_step(a, b, name) for a, b in zip(dates, dates[1:])))
    for before, after, number in zip(dates, dates[1:], numbers[1:]):
        if not _is_step(before, after, frequency):
            raise CharrnnError(f"series {label} line {number}: a gap between {_show(before)} and {_show(after)} in a "
                               f"{frequency} series; add the missing rows (empty values can be filled with --fill)")
    return frequency


def _is_step(a: datetime, b: datetime, frequency: str) -> bool:
    months, delta = _STEPS[frequency]
    if delta is not None:
        return b - a == delta
    return _months_between(a, b) == months and (b.day == a.day or (_month_end(a) and _month_end(b)))


def _month_end(when: datetime) -> bool:
    return when.day == _days_in_month(when.year, when.month)


def _show(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M") if when.hour or when.minute else when.strftime("%Y-%m-%d")


def future_dates(series: Series, horizon: int) -> list[datetime] | None:
    """The dates of the horizon steps after the series ends, at its frequency."""
    if series.dates is None or series.frequency is None:
        return None
    last = series.dates[-1]
    months, delta = _STEPS[series.frequency]
    try:
        if delta is not None:
            return [last + delta * (i + 1) for i in range(horizon)]
        out = []
        for i in range(1, horizon + 1):
            total = last.month - 1 + months * i
            year, month = last.year + total // 12, total % 12 + 1
            day = _days_in_month(year, month) if _month_end(last) else min(last.day, _days_in_month(year, month))
            out.append(last.replace(year=year, month=month, day=day))
        return out
    except (OverflowError, ValueError):  # datetime ends with the year 9999
        raise CharrnnError(f"the series ends at {_show(last)}: {horizon} {series.frequency} steps after it are past "
                           "the last date Python knows (9999-12-31)") from None


def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]  # (not from the next month's first day: December 9999 has none)


# The season length of each frequency: a year of months or quarters, a week of days, a day of hours.
SEASON = {"hourly": 24, "daily": 7, "weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}


def season_length(series: Series) -> int:
    """The seasonal period of the series' frequency (1: none known)."""
    return SEASON.get(series.frequency or "", 1)
