"""Shared test helpers: tiny corpora written into tmp_path, a private token cache, and the
robustness report at the end of the run."""

import pytest
import torch

# Issue 14's report: the fuzz suite's and the kill -9 trials' figures, one line each, printed in
# pytest's terminal summary (a print inside a test is captured and never seen).
REPORT_LINES: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter):
    for line in REPORT_LINES.values():
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # Token files go to a per-test cache, never the user's ~/.cache.
    monkeypatch.setenv("CHARRNN_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)  # small models: threads cost more than they save, and CI has 2 cores


@pytest.fixture
def tiny_corpus(tmp_path):
    """A small repetitive text a tiny model learns quickly."""
    text = "".join(f"the cat sat on mat {i % 7}.\nthe dog ran to log {i % 5}!\n" for i in range(300))
    path = tmp_path / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    return path
