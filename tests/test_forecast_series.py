"""Reading series (dates, frequency, every kind of bad row as a line-numbered error), the
metrics and the baselines of the forecasting task."""

import numpy as np
import pytest

from charrnn import corpora
from charrnn.errors import CharrnnError, UsageError
from charrnn.forecast import baselines, metrics
from charrnn.forecast.series import future_dates, read_numbers, read_series, season_length

SHARED = corpora.REPO_ROOT.parent / "shared" / "corpora"


def series_of(text, **options):
    return read_series("test.csv", text=text, **options)


def test_monthly_csv_finds_its_dates_and_season():
    s = series_of("Month,Passengers\n1949-01,112\n1949-02,118\n1949-03,132\n")
    assert s.name == "Passengers" and s.frequency == "monthly" and season_length(s) == 12
    assert s.values.tolist() == [112, 118, 132]
    assert [d.strftime("%Y-%m") for d in future_dates(s, 10)][-2:] == ["1949-12", "1950-01"]


def test_month_end_dates_are_monthly_and_continue_at_month_ends():
    s = series_of("date,v\n2024-01-31,1\n2024-02-29,2\n2024-03-31,3\n")
    assert s.frequency == "monthly"
    assert [d.day for d in future_dates(s, 2)] == [30, 31]


def test_several_columns_need_column_and_an_unknown_one_lists_them():
    text = "Date,open,close\n2024-01-01,1,2\n2024-01-02,3,4\n"
    with pytest.raises(UsageError, match="--column"):
        series_of(text)
    assert series_of(text, column="close").values.tolist() == [2, 4]
    with pytest.raises(UsageError, match="Date, open, close"):
        series_of(text, column="volume")


@pytest.mark.parametrize("text, fragment", [
    ("date,v\n2024-01-01,1\n2024-01-02,1\n2024-01-04,2\n", "line 4: a gap between 2024-01-02 and 2024-01-04"),
    ("date,v\n2024-01-01,1\n2024-01-02,1\n2024-01-02,2\n", "line 4: the date 2024-01-02 repeats line 3"),
    ("date,v\n2024-01-02,1\n2024-01-01,1\n", "sort the rows"),
    ("date,v\n2024-01-01,1\n2024-01-02,abc\n", "line 3: v is 'abc', not a number"),
    ("date,v\n2024-01-01,1\n2024-01-02,\n2024-01-03,2\n", "1 missing value(s) in v: line 3"),
    ("date,v\n2024-01-01,1\nyesterday,2\n", "line 3: date is 'yesterday', not a date"),
])
def test_bad_rows_are_named_by_line(text, fragment):
    with pytest.raises(CharrnnError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        series_of(text)


def test_missing_values_are_filled_only_when_asked():
    text = "date,v\n2024-01-01,1\n2024-01-02,\n2024-01-03,3\n"
    assert series_of(text, fill="linear").values.tolist() == [1, 2, 3]
    assert series_of(text, fill="previous").values.tolist() == [1, 1, 3]
    with pytest.raises(UsageError, match="--fill"):
        series_of(text, fill="zero")


def test_one_number_a_line():
    s = read_numbers(["1.5", "", "2", "3e2"])
    assert s.values.tolist() == [1.5, 2, 300] and s.dates is None and season_length(s) == 1
    assert series_of("10\n11\n12\n").values.tolist() == [10, 11, 12]
    with pytest.raises(CharrnnError, match="line 2"):
        read_numbers(["1", "x"])


def test_metrics_on_known_values():
    actual, forecast = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0])
    assert metrics.mae(actual, forecast) == pytest.approx(1.0)
    assert metrics.rmse(actual, forecast) == pytest.approx(np.sqrt(5 / 3))
    assert metrics.smape(actual, forecast) == pytest.approx(100 * (0 + 2 / 5 + 4 / 6) / 3)
    history = np.array([1.0, 3.0, 2.0, 4.0, 3.0, 5.0])
    assert metrics.mase_scale(history, 2) == pytest.approx(1.0)  # |2-1|, |4-3|, |3-2|, |5-4|
    assert metrics.mase(actual, forecast, 2.0) == pytest.approx(0.5)
    assert metrics.directional_accuracy(np.array([2.0, 0.0]), np.array([3.0, 1.5]), np.array([1.0, 1.0])) == 0.5
    with pytest.raises(ValueError, match="constant"):
        metrics.mase_scale(np.ones(5), 1)


def test_baselines():
    history = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    assert baselines.naive(history, 2).tolist() == [30, 30]
    assert baselines.seasonal_naive(history, 4, 3).tolist() == [10, 20, 30, 10]
    assert baselines.drift(history, 2).tolist() == pytest.approx([35.8, 41.6])


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/corpora on this machine")
def test_the_shared_series_read():
    airline = read_series(SHARED / "airline-passengers.csv")
    assert (len(airline), airline.frequency) == (144, "monthly")
    btc = read_series(SHARED / "btc-usd-daily.csv", column="close")
    assert (len(btc), btc.frequency) == (4091, "daily")
