"""The fuzz suite (issue 14): every command, driven in process with generated bad values, files,
encodings, paths, checkpoint mutations and Ctrl-C, must end with a documented exit code (README,
"Errors and exit codes"), one "charrnn: error:" line when it fails, never a traceback, and must leave
every existing file as it was when it fails.

Two Hypothesis profiles: "ci" (the default; a few examples a test, derandomised so that CI is
reproducible) and "long" for a release check, chosen by the environment:

    python -m pytest -m fuzz                       # ci (with the kill -9 trials)
    CHARRNN_FUZZ=long python -m pytest -m fuzz     # long

A traceback fails its test with the command line that raised it (shrunk by Hypothesis), and the run
ends with one report line: "fuzz (ci profile): N generated inputs: N clean errors, N accepted,
0 tracebacks".
"""

from __future__ import annotations

import calendar
import contextlib
import csv
import gzip
import hashlib
import io
import math
import os
import random
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import torch
import typer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import REPORT_LINES

from charrnn.checkpoint import BUNDLED_DIR
from charrnn.cli import app, main
from charrnn.cli_support import DEFAULT_COMMAND

pytestmark = pytest.mark.fuzz

# -- profiles ----------------------------------------------------------------------------------

# Examples are whole commands (a checkpoint loaded, a model trained for two steps): Hypothesis's
# per-example deadline and its too-slow check would flag the commands, not a bug. The autouse
# fixtures of conftest.py (a private cache, one thread) hold for a whole test, not one example,
# which is what they are for here.
_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                      HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=15, derandomize=True, database=None, **_COMMON)
settings.register_profile("long", max_examples=400, **_COMMON)
PROFILE = os.environ.get("CHARRNN_FUZZ") or "ci"
if PROFILE not in ("ci", "long"):
    raise pytest.UsageError(f"CHARRNN_FUZZ must be ci or long, not {PROFILE!r}")
# Each test takes the chosen profile explicitly (not settings.load_profile, which would change
# every other Hypothesis test in the session too).
FUZZ = settings.get_profile(PROFILE)


NO_SHRINKING = [Phase.explicit, Phase.reuse, Phase.generate]


def fuzz(share: float = 1.0) -> settings:
    """The profile, with share times its examples (cheap tests get more, training ones fewer)."""
    return settings(FUZZ, max_examples=max(1, round(FUZZ.max_examples * share)))


# -- running a command in process --------------------------------------------------------------

DOCUMENTED_EXIT_CODES = {0: "success", 1: "run-time problem", 2: "bad usage", 130: "Ctrl-C"}
ERROR_PREFIX = "charrnn: error:"
HANG_SECONDS = 20  # no command here takes more than a few seconds: a value that hangs one is a bug
MEMORY_HEADROOM = 6 * 2**30  # address space beyond what the process holds: see _memory_cap

TALLY: Counter = Counter()  # the report line's figures (see _report_line)


class Hung(BaseException):
    """A command ran past HANG_SECONDS (a BaseException: no `except Exception` in charrnn hides it)."""


class Escaped(AssertionError):
    """A KeyboardInterrupt or a hang that escaped main(), as a test failure."""


@dataclass
class Outcome:
    argv: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def command(self) -> str:
        return "charrnn " + shlex.join(self.argv)


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every file under folder (and the bundled models) with its size, mtime and content hash."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            digest = hashlib.sha1(path.read_bytes()).hexdigest()
            files[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns, digest)
    for path in sorted(BUNDLED_DIR.glob("*.pt")):  # too big to hash at every call; size and mtime
        stat = path.stat()
        files[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return files


def run_cli(argv: list[str], *, stdin: bytes = b"", interrupt_after: float | None = None) -> Outcome:
    """Run `charrnn argv` in this process, in the current folder, with stdin's bytes, and check
    what the issue promises: a documented exit code, no traceback, one error line on failure, and
    every file in the folder as it was when it fails. interrupt_after: send SIGINT (Ctrl-C) after
    this many seconds.

    An exception escaping main() is the bug this suite looks for: it propagates (Hypothesis tells
    distinct ones apart by type and place) with the command line added as a note."""
    argv = [str(a) for a in argv]
    TALLY["inputs"] += 1
    before = snapshot(Path.cwd())
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    sys.stdout, sys.stderr = stdout, stderr
    # One timer, SIGALRM: Ctrl-C (a SIGINT raised in this thread, so it lands while the command
    # runs, never after) when asked for, then the hang limit.
    running = [True]

    def on_alarm(signum, frame):
        if not running[0]:
            return
        if interrupt_after is not None and not interrupted:
            if "hypothesis" in frame.f_code.co_filename or frame.f_code.co_filename.endswith(("weakref.py", "_weakrefset.py")):
                # Inside Hypothesis's garbage-collection hook, where a KeyboardInterrupt would be
                # swallowed as "unraisable" (no charrnn process has that hook), or a weak reference's
                # callback, where the interpreter swallows it wherever the collection runs (seen
                # while typer built the commands, before charrnn could do anything): a moment later.
                signal.setitimer(signal.ITIMER_REAL, 0.002)
                return
            interrupted.append(True)
            signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
            signal.raise_signal(signal.SIGINT)  # whatever handler the command has installed takes it
            return
        raise Hung(f"still running after {HANG_SECONDS} s")

    interrupted: list[bool] = []
    previous_alarm = signal.signal(signal.SIGALRM, on_alarm)
    previous_int = signal.getsignal(signal.SIGINT)
    if interrupt_after is not None:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter, not pytest's
    signal.setitimer(signal.ITIMER_REAL, max(interrupt_after, 0.001) if interrupt_after is not None else HANG_SECONDS)
    try:
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            running[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_alarm)
            signal.signal(signal.SIGINT, previous_int)
            sys.stdin, sys.stdout, sys.stderr = saved
    except BaseException as exc:
        TALLY["tracebacks"] += 1
        note = (f"fuzz: `{shlex.join(['charrnn', *argv])}` (stdin: {_describe(stdin)}) ended in a traceback; "
                f"its stderr:\n{stderr.getvalue()}")
        if not isinstance(exc, Exception):  # KeyboardInterrupt or Hung: a failure of this test, not a stop of the session
            raise Escaped(f"{type(exc).__name__} escaped main()\n{note}") from exc
        exc.add_note(note)
        raise
    outcome = Outcome(argv, code, stdout.getvalue(), stderr.getvalue())
    try:
        check_outcome(outcome, before, interrupted=interrupt_after is not None)
    except AssertionError:
        TALLY["wrong"] += 1
        raise
    TALLY["accepted" if code == 0 else "clean errors"] += 1
    return outcome


def run_subprocess(argv: list[str]) -> Outcome:
    """Run `python -m charrnn argv` in the current folder, for what cannot run in process (a
    crash of the interpreter itself), and check it as run_cli does. A death by a signal (a
    negative code here, 128 + the signal in a shell) is no documented exit code."""
    TALLY["inputs"] += 1
    cwd = Path.cwd()
    before = snapshot(cwd)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "RUST_BACKTRACE": "0"}
    try:
        proc = subprocess.run([sys.executable, "-m", "charrnn", *argv], cwd=cwd, capture_output=True, env=env,
                              timeout=HANG_SECONDS * 4)
    except subprocess.TimeoutExpired:
        TALLY["tracebacks"] += 1
        raise AssertionError(f"charrnn {shlex.join(argv)} still ran after {HANG_SECONDS * 4} s") from None
    outcome = Outcome(list(argv), proc.returncode, proc.stdout.decode(errors="replace"),
                      proc.stderr.decode(errors="replace"))
    crashed = proc.returncode < 0 or proc.returncode > 128 and proc.returncode != 130 or "Traceback" in outcome.stderr
    TALLY["tracebacks" if crashed else "clean errors" if proc.returncode else "accepted"] += 1
    assert not crashed, f"{outcome.command} crashed (exit {proc.returncode}):\n{outcome.stderr[-3000:]}"
    check_outcome(outcome, before)
    return outcome


def check_outcome(outcome: Outcome, before: dict, *, interrupted: bool = False) -> None:
    where = f"{outcome.command}\nexit code {outcome.code}; stderr:\n{outcome.stderr}"
    assert outcome.code in DOCUMENTED_EXIT_CODES, f"an undocumented exit code: {where}"
    assert "Traceback" not in outcome.stderr, f"a traceback on stderr: {where}"
    if outcome.code == 0:
        return
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    # A run stopped by Ctrl-C has been saved; its summary is its message (none with --quiet).
    if not (interrupted and outcome.code == 130 and not errors):
        assert len(errors) == 1 and lines[-1] == errors[0], f"not one {ERROR_PREFIX!r} line at the end: {where}"
        # The way out an error names must exist: an option it suggests is one this command has.
        known = options_of(outcome.argv)
        if known is not None:
            named = {name for name in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", errors[0])
                     if not any(name in arg for arg in outcome.argv)}  # not one the user typed
            assert named <= known, f"the error suggests {sorted(named - known)}, which this command does not have: {where}"
    if not interrupted:  # Ctrl-C during training saves the run, as it should
        after = snapshot(Path.cwd())
        changed = sorted(name for name, seen in before.items() if after.get(name) != seen)
        assert not changed, f"a failed command changed or removed {changed}: {where}"


_COMMAND_TREE = []


def options_of(argv: list[str]) -> set[str] | None:
    """The options (every spelling) of the command argv runs, or None where argv names none."""
    if not _COMMAND_TREE:
        _COMMAND_TREE.append(typer.main.get_command(app))
    command, rest, names = _COMMAND_TREE[0], list(argv), set()
    while True:
        names |= {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            return names
        if rest and rest[0] in subcommands:
            command = subcommands[rest.pop(0)]
        elif DEFAULT_COMMAND in subcommands:  # charrnn translate TEXT, charrnn classify TEXT
            command = subcommands[DEFAULT_COMMAND]
        else:
            return None


def _describe(data: bytes) -> str:
    return f"{len(data)} bytes {data[:60]!r}{'...' if len(data) > 60 else ''}" if data else "empty"


def option(name: str, values: st.SearchStrategy) -> st.SearchStrategy:
    """argv for an option and a generated value, as `--name value` or `--name=value`."""
    return st.tuples(values, st.booleans()).map(lambda vb: [f"{name}={vb[0]}"] if vb[1] else [name, vb[0]])


def options_from(table: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """argv for one option of the table with a generated value."""
    return st.sampled_from(sorted(table)).flatmap(lambda name: option(name, table[name]))


# Options whose values are names (of choices, columns or files), never numbers.
NAMED_CHOICES = {"--cell", "--device", "--precision", "--tokenizer", "--attention", "--pooling", "--split", "--model",
                 "--decoder", "--transform", "--fill", "--column", "--date-column", "--plot"}


def check_number_refusal(bad: list[str], outcome: Outcome) -> None:
    """A value of a numeric option that is no number, NaN or infinite is bad usage, exit code 2
    (README, "Errors and exit codes"): never accepted, never a run-time error."""
    name, value = bad if len(bad) == 2 else bad[0].split("=", 1)
    if name in NAMED_CHOICES:
        return
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        assert outcome.code == 2, f"{name} {value!r} exited {outcome.code}, not 2: {outcome.command}\n{outcome.stderr}"


# -- generated values --------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=16)
NOT_NUMBERS = st.sampled_from(["", " ", "-", "+", "--", "abc", "1,5", "1.2.3", "0x10", "0b1", "1e", "e3", "∞", "１２",
                               "٣", "½", "Ⅻ", "None", "true", "[]", "\u00a0", "1 2", "--help", "-h", "nan%", "1/2"])
FLOATISH = st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "+inf", "Infinity", "1e400", "-1e400", "1e-400",
                            "-0", "-0.0", "0.0", "1.5", "-1.5", "1e3", "1e-3", "1_000", " 7 "])
HUGE = st.one_of(st.sampled_from([2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**40]),
                 st.integers(min_value=2**31, max_value=2**200))


def ints(low: int = 1, high: int = 64, *, huge: bool = True, extra: st.SearchStrategy | None = None) -> st.SearchStrategy:
    """Values for an integer option: zero and negatives, a few valid ones (low..high), numbers far
    beyond any valid range (unless huge=False: where a huge value is a valid request for a lot of
    work, as -n is), floats and garbage."""
    numbers = [st.integers(max_value=0), st.integers(low, high), st.sampled_from([-1, -(2**63), -(2**64)])]
    if huge:
        numbers += [HUGE, HUGE.map(lambda n: -n)]
    if extra is not None:
        numbers.append(extra)
    return st.one_of(st.one_of(numbers).map(str), FLOATISH, NOT_NUMBERS, TEXT)


def floats(*, high: float | None = None) -> st.SearchStrategy:
    """Values for a float option: NaN, the infinities, any float (at most high, where a larger one
    is a valid request for a lot of work), integers and garbage."""
    numbers = st.floats(allow_nan=True, allow_infinity=True) if high is None else st.one_of(
        st.floats(max_value=high, allow_nan=False), st.sampled_from([math.nan, math.inf, -math.inf]))
    floatish = FLOATISH if high is None else FLOATISH.filter(lambda text: not _finite_above(text, high))
    return st.one_of(numbers.map(repr), numbers.map(str), floatish, st.integers(max_value=2).map(str), NOT_NUMBERS, TEXT)


def _finite_above(text: str, high: float) -> bool:
    """Whether text reads as a finite number above high (a valid request for more work)."""
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value > high


def choices(*valid: str) -> st.SearchStrategy:
    """Values for a named choice: the valid names, near misses and garbage."""
    near = [v.upper() for v in valid] + [v + " " for v in valid] + [v[:-1] for v in valid if len(v) > 1]
    return st.one_of(st.sampled_from(list(valid) + near), NOT_NUMBERS, TEXT)


# Codec names: text codecs, codecs that are not text encodings at all (bytes to bytes, text to
# text), ones that always fail, aliases, and names that are no codec.
ENCODING_NAMES = ["utf-8", "UTF8", "utf_8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1",
                  "latin1", "iso-8859-15", "cp1252", "ascii", "us-ascii", "cp037", "shift_jis", "euc-jp", "gb18030",
                  "big5", "koi8-r", "mac-roman", "utf-7", "idna", "punycode", "unicode_escape",
                  "raw_unicode_escape", "charmap", "palmos", "base64", "base_64", "hex", "zlib", "bz2", "uu",
                  "quopri", "rot13", "rot_13", "undefined", "mbcs", "oem", "utf-8 ", "", " ", "utf-9", "klingon",
                  "../utf-8", "utf-8\n"]
ENCODINGS = st.one_of(st.sampled_from(ENCODING_NAMES), TEXT)
# Real text encodings, for the tests of file contents (whose bugs the odd codec names would hide).
TEXT_ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "ascii", "utf-16", "utf-32", "shift_jis",
                                  "utf-7"])
DEVICES = choices("auto", "cpu", "cuda", "mps", "cuda:0", "cuda:99", "cpu:0", "meta")
PRECISIONS = choices("auto", "fp32", "bf16", "fp16", "fp64")


def surrogate_escaped(data: bytes) -> str:
    """Bytes as Python hands them over in sys.argv when they are not valid in the locale: the
    invalid ones as lone surrogates (surrogateescape). Such a string is what `charrnn sample
    --prime $'\\xff'` passes."""
    return data.decode("utf-8", "surrogateescape")


# Text as a user may type it: any code point (characters no model's vocabulary holds, combining
# marks, right-to-left, private use, noncharacters), and bytes the terminal could not decode.
ODD_TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
    st.lists(st.sampled_from(["\u0301", "\u202e", "\ufeff", "\ufffd", "\uffff", "\U0010ffff", "\ue000", "\r", "\n",
                              "\t", "\x7f", "\x1b[31m", "👩‍👩‍👧", "ﷺ", "𝔘", "a", " "]), max_size=10).map("".join),
    st.binary(max_size=30).map(surrogate_escaped),
)


ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)  # encodable in any UTF
# File contents: random binary, text in other encodings (UTF-16 and UTF-32 with their byte order
# marks), lone surrogates, empty, blank, one long line, mixed good and bad lines, NUL bytes, gzip.
FILE_BYTES = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=500).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.text(st.characters(max_codepoint=255), min_size=1, max_size=500).map(lambda s: s.encode("latin-1")),
    ANY_TEXT.map(lambda s: s.encode("utf-16")),
    ANY_TEXT.map(lambda s: s.encode("utf-32")),
    st.sampled_from([b"", b"\n", b"\r\n", b"\t", b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]),
    st.integers(1, 4000).map(lambda n: b"\n" * n),
    st.integers(1, 2000).map(lambda n: b"\r\n\t " * n),
    # One long line, of moderate length: byte-level BPE takes time quadratic in the length of a
    # word without spaces (50,000 characters take a second, 300,000 about a minute).
    st.tuples(st.integers(10_000, 60_000), st.sampled_from([b"a", b"ab ", b"\xc3\xa9", b"\t", b"x\ty"])).map(
        lambda t: t[0] * t[1]),
    st.lists(st.one_of(st.binary(max_size=40), st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
                       st.sampled_from(["caf\u00e9\tfood".encode("latin-1"), b"word\tlabel", b"\t", b"a\tb\tc"])),
             max_size=60).map(b"\n".join),
    st.binary(max_size=200).map(gzip.compress),
    st.binary(max_size=200).map(lambda b: gzip.compress(b)[: max(1, len(b) // 2)]),
)


# -- what the commands work on: tiny models trained once ---------------------------------------


@dataclass
class Models:
    """A folder with a corpus, pair, labelled and series files and a tiny run of each task (lm, tr,
    cl, fc)."""

    root: Path

    @contextlib.contextmanager
    def workdir(self, *names: str):
        """A fresh folder, the current one while the block runs, holding copies of the named
        files and runs of root (so a command that changes them changes only its copies)."""
        folder = Path(tempfile.mkdtemp(dir=self.root / "work"))
        for name in names:
            source = self.root / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, folder / name)
        previous = os.getcwd()
        os.chdir(folder)
        try:
            yield folder
        finally:
            os.chdir(previous)
            shutil.rmtree(folder, ignore_errors=True)


def _labelled_lines(count: int, seed: int) -> str:
    rng = random.Random(seed)
    topics = {"food": "pizza pasta bread soup", "sport": "goal match team ball", "weather": "rain snow sun wind"}
    lines = []
    for i in range(count):
        label = list(topics)[i % 3]
        words = rng.sample(topics[label].split(), 2) + [rng.choice(["great", "bad", "ok", "today"]), str(i % 11)]
        lines.append(f"{' '.join(words)}\t{label}\n")
    return "".join(lines)


LM_TRAIN = ("-q", "--device", "cpu", "--precision", "fp32", "-b", "4", "--seq-len", "16", "--hidden-size", "8",
            "--num-layers", "1", "--lr", "0.01", "--warmup-steps", "0", "--dropout", "0", "--eval-every", "2",
            "--max-steps", "2", "--epochs", "0.05")
TR_TRAIN = ("-q", "--device", "cpu", "--precision", "fp32", "-b", "8", "--test-size", "10", "--dev-size", "10",
            "--embedding-size", "8", "--hidden-size", "8", "--num-layers", "1", "--tokenizer", "char", "--lr", "0.01",
            "--warmup-steps", "0", "--dropout", "0", "--eval-every", "2", "--max-steps", "2", "--epochs", "0.05")
CL_TRAIN = ("-q", "--device", "cpu", "--precision", "fp32", "--tokenizer", "char", "-b", "8", "--embedding-size", "8",
            "--hidden-size", "8", "--lr", "0.01", "--warmup-steps", "0", "--dropout", "0", "--eval-every", "2",
            "--max-steps", "2", "--epochs", "0.05", "--ngram-buckets", "64")
# A window of a year (not the default three) keeps the tiny WaveNet small; 80 months leave it 8
# values each to validate and test.
FC_TRAIN = ("-q", "--device", "cpu", "--precision", "fp32", "-b", "8", "--horizon", "3", "--window", "12",
            "--hidden-size", "8", "--lr", "0.01", "--warmup-steps", "0", "--dropout", "0", "--eval-every", "2",
            "--max-steps", "2")


def _monthly_csv(count: int, column: str, seed: int) -> str:
    """A monthly series above 0 with a trend and a yearly season, as `Month,<column>` CSV."""
    rng = random.Random(seed)
    rows = [f"{1990 + i // 12}-{i % 12 + 1:02d},{100 * math.exp(0.01 * i + 0.15 * math.sin(math.pi * i / 6)) + rng.random():.3f}"
            for i in range(count)]
    return "\n".join([f"Month,{column}", *rows]) + "\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Models:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "work").mkdir()
    text = "".join(f"ROMEO: the cat sat on mat {i % 7}.\nJULIET: the dog ran to log {i % 5}!\n" for i in range(200))
    (root / "corpus.txt").write_text(text, encoding="utf-8")
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 6))) for _ in range(600)]
    (root / "pairs.tsv").write_text("".join(f"{w}\t{w.upper()}\n" for w in words), encoding="utf-8")
    (root / "labelled.tsv").write_text(_labelled_lines(300, seed=0), encoding="utf-8")
    (root / "sales.csv").write_text(_monthly_csv(80, "Sales", seed=0), encoding="utf-8")
    # For the bundled airline forecaster: its column, and long enough for its window and test part.
    (root / "passengers.csv").write_text(_monthly_csv(120, "Passengers", seed=1), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHARRNN_CACHE", str(root / "cache"))
        patch.chdir(root)
        for argv in (["train", "corpus.txt", "-o", "lm", *LM_TRAIN, "--max-steps", "10", "--eval-every", "5"],
                     ["translate", "train", "pairs.tsv", "-o", "tr", *TR_TRAIN, "--max-steps", "10", "--eval-every", "5"],
                     ["classify", "train", "labelled.tsv", "-o", "cl", *CL_TRAIN, "--max-steps", "10", "--eval-every", "5"],
                     ["forecast", "train", "sales.csv", "-o", "fc", *FC_TRAIN, "--max-steps", "10", "--eval-every", "5"]):
            outcome = run_cli(argv)
            assert outcome.code == 0, outcome.stderr
    TALLY.clear()  # the report counts generated inputs, not the set-up
    return Models(root)


@pytest.fixture(scope="module", autouse=True)
def _memory_cap():
    """Cap the address space while the module runs (CPU only: CUDA reserves more than this), so a
    generated size that would need more memory than the machine has fails at once, as it would for
    a user, rather than swapping the machine to death or waking the OOM killer."""
    if torch.cuda.is_available() or not os.path.exists("/proc/self/statm"):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:  # Linux; elsewhere no cap
        in_use = int(statm.read().split()[0]) * resource.getpagesize()
    cap = in_use + MEMORY_HEADROOM
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def report_line() -> str:
    wrong = f", {TALLY['wrong']} wrong exit codes, messages or changed files" if TALLY["wrong"] else ""
    return (f"fuzz ({PROFILE} profile): {TALLY['inputs']} generated inputs: {TALLY['clean errors']} clean errors, "
            f"{TALLY['accepted']} accepted, {TALLY['tracebacks']} tracebacks{wrong}")


@pytest.fixture(scope="module", autouse=True)
def _report_line():
    yield
    if TALLY["inputs"]:
        REPORT_LINES["fuzz"] = report_line()


# -- numeric and named options -----------------------------------------------------------------

SAMPLE_OPTIONS = {
    "--temp": floats(),
    "--top-k": ints(1, 50),
    "--top-p": floats(),
    "--length": ints(0, 30, huge=False),
    "-n": ints(0, 30, huge=False),
    "--num-samples": ints(1, 3, huge=False),
    "--seed": ints(0, 2**63 - 1),
    "--device": DEVICES,
}


@fuzz(2)
@given(model=st.sampled_from(["lm", "lm/last.pt", "shakespeare"]), bad=options_from(SAMPLE_OPTIONS),
       num_samples=st.integers(1, 3))
def test_sample_options(models, model, bad, num_samples):
    with models.workdir("lm"):
        outcome = run_cli(["sample", "-c", model, "-n", "5", "--seed", "1", "--num-samples", num_samples, *bad])
        check_number_refusal(bad, outcome)


@fuzz()
@given(seed=st.one_of(st.integers(-(2**65), 2**65), HUGE, st.sampled_from([2**63 - 1, 2**63 - 2, 2**63])),
       num_samples=st.integers(1, 4))
def test_seeds(models, seed, num_samples):
    with models.workdir("lm"):
        run_cli(["sample", "-c", "lm", "-n", "2", "--seed", seed, "--num-samples", num_samples])


SIZES = ints(1, 16, extra=st.integers(16385, 2**40))  # beyond the largest allowed layer, never a valid huge size
LAYERS = ints(1, 3, extra=st.integers(65, 2**40))
TRAINING_OPTIONS = {
    "--hidden-size": SIZES,
    "--num-layers": LAYERS,
    "--embedding-size": SIZES,
    "--dropout": floats(),
    "--batch-size": ints(1, 64),
    "-b": ints(1, 64),
    "--lr": floats(),
    "--min-lr-ratio": floats(),
    "--warmup-steps": ints(0, 100),
    "--weight-decay": floats(),
    "--grad-clip": floats(),
    "--eval-every": ints(1, 10),
    "--max-steps": ints(0, 3),
    "--epochs": floats(),
    "--time-budget": floats(),
    "--patience": ints(0, 10),
    "--seed": ints(0, 100),
    "--cell": choices("lstm", "gru", "rnn"),
    "--device": DEVICES,
    "--precision": PRECISIONS,
    "--tokenizer": choices("char", "bpe"),
    # Byte-level BPE with 10**9 or more tokens aborts the whole process (see test_bpe_vocab_sizes,
    # which runs them in a subprocess): in process, only sizes far beyond 64 bits (an overflow).
    "--vocab-size": ints(257, 400, huge=False, extra=st.integers(2**64, 2**80)),
}
LM_OPTIONS = {**TRAINING_OPTIONS, "--seq-len": ints(1, 64), "--val-frac": floats()}


@fuzz(1.5)
@given(bad=options_from(LM_OPTIONS), bpe=st.booleans())
def test_train_options(models, bad, bpe):
    with models.workdir("corpus.txt"):
        tokenizer = ["--tokenizer", "bpe", "--vocab-size", "300"] if bpe else []
        check_number_refusal(bad, run_cli(["train", "corpus.txt", "-o", "run", *LM_TRAIN, *tokenizer, *bad]))


TRANSLATE_TRAIN_OPTIONS = {
    **TRAINING_OPTIONS,
    "--test-size": ints(0, 50),
    "--dev-size": ints(0, 50),
    "--max-tokens": ints(0, 200),
    "--typed-copies": floats(),
    "--label-smoothing": floats(),
    "--encoder-layers": LAYERS,
    "--decoder-layers": LAYERS,
    "--attention": choices("additive", "multiplicative", "none"),
}


@fuzz(1.5)
@given(bad=options_from(TRANSLATE_TRAIN_OPTIONS), flags=st.lists(st.sampled_from(
    ["--reverse", "--skip-bad", "--shared-vocab", "--tie-embeddings"]), unique=True, max_size=2))
def test_translate_train_options(models, bad, flags):
    with models.workdir("pairs.tsv"):
        check_number_refusal(bad, run_cli(["translate", "train", "pairs.tsv", "-o", "run", *TR_TRAIN, *flags, *bad]))


CLASSIFY_TRAIN_OPTIONS = {
    **TRAINING_OPTIONS,
    "--val-frac": floats(),
    "--max-tokens": ints(0, 200),
    "--ngram-buckets": ints(0, 4096, extra=st.integers(2**32 - 5, 2**32 + 5)),
    # No huge orders: --ngram-order 1000000000 is accepted and then loops over every order up to
    # it for each text (ngrams.ngram_ids), a hang rather than an error; valid ones stay small.
    "--ngram-order": ints(0, 4, huge=False),
    "--pooling": choices("max", "mean", "attention"),
    "--pretrain-epochs": floats(high=0.05),  # more is a valid request for a long pretraining
    "--pretrain-lr": floats(),
}


@fuzz(1.5)
@given(bad=options_from(CLASSIFY_TRAIN_OPTIONS), normalise=st.sampled_from([[], ["--no-normalise"], ["--skip-bad"]]))
def test_classify_train_options(models, bad, normalise):
    with models.workdir("labelled.tsv"):
        outcome = run_cli(["classify", "train", "labelled.tsv", "-o", "run", *CL_TRAIN, *normalise, *bad])
        check_number_refusal(bad, outcome)


@fuzz(0.5)
@given(folds=options_from({"--folds": ints(2, 3)}))
def test_classify_cv_folds(models, folds):
    with models.workdir("labelled.tsv"):
        check_number_refusal(folds, run_cli(["classify", "cv", "labelled.tsv", *CL_TRAIN, "--max-steps", "1", *folds]))


TRANSLATE_OPTIONS = {
    "--beam": ints(1, 8),
    "--max-len": ints(0, 50),
    "--length-penalty": floats(),
    "--no-repeat-ngram": ints(0, 8),
    "--batch-size": ints(1, 64),
    "--device": DEVICES,
}


@fuzz(2)
@given(model=st.sampled_from(["tr", "spa-eng"]), bad=options_from(TRANSLATE_OPTIONS),
       normalise=st.sampled_from([[], ["--normalise"], ["--no-normalise"], ["--json"]]))
def test_translate_options(models, model, bad, normalise):
    with models.workdir("tr"):
        outcome = run_cli(["translate", "-c", model, *normalise, *bad, "--", "where is the station", "abc"])
        check_number_refusal(bad, outcome)


EVAL_OPTIONS = {
    "--beam": ints(1, 4),
    "--examples": ints(0, 5),
    "--batch-size": ints(1, 64),
    "--split": choices("test", "dev", "train"),
    "--device": DEVICES,
}


@fuzz()
@given(bad=options_from(EVAL_OPTIONS), as_json=st.booleans())
def test_translate_eval_options(models, bad, as_json):
    with models.workdir("tr", "pairs.tsv"):
        outcome = run_cli(["translate", "eval", "-c", "tr", "--examples", "1", *(["--json"] if as_json else []), *bad])
        check_number_refusal(bad, outcome)


@fuzz()
@given(model=st.sampled_from(["cl", "sentiment"]), bad=options_from({
    "--batch-size": ints(1, 300), "--device": DEVICES}))
def test_classify_options(models, model, bad):
    with models.workdir("cl"):
        check_number_refusal(bad, run_cli(["classify", "-c", model, *bad, "--", "pizza great", "rain today", ""]))


FORECAST_TRAIN_OPTIONS = {
    **{name: values for name, values in TRAINING_OPTIONS.items()
       if name not in ("--cell", "--tokenizer", "--vocab-size", "--embedding-size")},  # no forecaster's options
    "--horizon": ints(1, 6),
    "--window": ints(2, 24),
    "--val-size": ints(1, 12),
    "--test-size": ints(1, 12),
    "--model": choices("wavenet", "lstm", "gru", "rnn"),
    "--decoder": choices("direct", "seq2seq"),
    "--transform": choices("auto", "log", "none"),
    "--fill": choices("previous", "linear"),
}


@fuzz(1.5)
@given(bad=options_from(FORECAST_TRAIN_OPTIONS),
       model=st.sampled_from([[], ["--bidirectional"], ["--model", "lstm"], ["--model", "gru", "--bidirectional"],
                              ["--model", "rnn", "--decoder", "seq2seq"]]))
def test_forecast_train_options(models, bad, model):
    with models.workdir("sales.csv"):
        check_number_refusal(bad, run_cli(["forecast", "train", "sales.csv", "-o", "run", *FC_TRAIN, *model, *bad]))


# Column names as a user may type them: the series' own (in another case, with spaces), the date
# column, names of no column, and any text.
SERIES_COLUMNS = st.one_of(st.sampled_from(["Sales", "sales", "Passengers", "Month", "value", "date", "", " ", "Sales ",
                                            "a,b", '"Sales"']), ODD_TEXT)
# Plot files: good ones, other suffixes, folders, missing folders, and any name (with no "/": a
# generated name never points outside the workdir).
PLOT_FILES = st.one_of(st.sampled_from(["out.png", "OUT.PNG", "out.pdf", "out", "", ".png", "folder", "folder/x.png",
                                        "no/such/x.png", "sales.csv", "sales.csv/x.png", "x.png/", "fc/best.pt"]),
                       TEXT.filter(lambda t: "/" not in t).map(lambda t: t + ".png"))
SERIES_READING_OPTIONS = {"--column": SERIES_COLUMNS, "--date-column": SERIES_COLUMNS,
                          "--fill": choices("previous", "linear"), "--plot": PLOT_FILES}
FORECAST_OPTIONS = {
    "eval": {**SERIES_READING_OPTIONS, "--device": DEVICES},
    "predict": {**SERIES_READING_OPTIONS, "--horizon": ints(1, 3), "--device": DEVICES},
    "inspect": {**SERIES_READING_OPTIONS, "--season": ints(1, 24), "--lags": ints(1, 40)},
}
FORECAST_FLAGS = {"eval": ["--log-scale", "--no-classical", "--json"], "predict": ["--json"], "inspect": ["--json"]}


@fuzz(2)
@given(command=st.sampled_from(sorted(FORECAST_OPTIONS)), model=st.sampled_from(["fc", "fc/last.pt", "airline"]),
       with_series=st.booleans(), data=st.data())
def test_forecast_options(models, command, model, with_series, data):
    bad = data.draw(options_from(FORECAST_OPTIONS[command]), label="bad")
    flags = data.draw(st.lists(st.sampled_from(FORECAST_FLAGS[command]), unique=True), label="flags")
    # The bundled model's own series is not here: it gets one long enough for its window.
    series = "passengers.csv" if model == "airline" else "sales.csv"
    with models.workdir("fc", "sales.csv", "passengers.csv") as work:
        (work / "folder").mkdir()
        if command == "inspect":
            argv = ["forecast", "inspect", series]
        else:
            given_series = [series] if with_series or (model == "airline" and command == "eval") else []
            argv = ["forecast", command, "-c", model, *given_series]
            if model == "airline" and command == "eval":
                # Its 13 test origins take over a second of exponential smoothing fits; fc's take a quarter.
                argv.append("--no-classical")
        check_number_refusal(bad, run_cli([*argv, *flags, *bad]))


# No shrinking: each example is a fresh interpreter (seconds), and a size is its own minimal example.
@settings(FUZZ, max_examples=3 if PROFILE == "ci" else 30, phases=NO_SHRINKING)
@given(vocab_size=st.one_of(st.integers(10**8, 2**64 - 1), st.sampled_from([10**9, 2**32, 2**63 - 1])),
       command=st.sampled_from(["train", "translate", "classify"]))
def test_bpe_vocab_sizes(models, vocab_size, command):
    # In a subprocess: a size the tokenizers library cannot allocate aborts the interpreter
    # (SIGABRT, no Python exception), which would end this whole test session in process.
    argv = {"train": ["train", "corpus.txt", "-o", "run", *LM_TRAIN],
            "translate": ["translate", "train", "pairs.tsv", "-o", "run", *TR_TRAIN],
            "classify": ["classify", "train", "labelled.tsv", "-o", "run", *CL_TRAIN]}[command]
    with models.workdir("corpus.txt", "pairs.tsv", "labelled.tsv"):
        run_subprocess([*argv, "--tokenizer", "bpe", "--vocab-size", str(vocab_size)])


# -- encodings ---------------------------------------------------------------------------------


@fuzz(2)
@given(encoding=ENCODINGS, command=st.sampled_from(["train", "classify train", "classify eval", "translate", "classify"]))
def test_encoding_names(models, encoding, command):
    with models.workdir("corpus.txt", "labelled.tsv", "tr", "cl"):
        argv, stdin = {
            "train": (["train", "corpus.txt", "-o", "run", *LM_TRAIN], b""),
            "classify train": (["classify", "train", "labelled.tsv", "-o", "run", *CL_TRAIN], b""),
            "classify eval": (["classify", "eval", "-c", "cl", "--data", "labelled.tsv"], b""),
            "translate": (["translate", "-c", "tr"], "abc d\u00e9f\n\nghi\n".encode()),
            "classify": (["classify", "-c", "cl"], "pizza great\n\ncaf\u00e9 rain\n".encode()),
        }[command]
        run_cli([*argv, "--encoding", encoding], stdin=stdin)


# -- text: primes, arguments, stdin, files -----------------------------------------------------


@fuzz(2)
@given(model=st.sampled_from(["lm", "shakespeare"]), prime=ODD_TEXT, as_json=st.booleans())
def test_primes(models, model, prime, as_json):
    with models.workdir("lm"):
        run_cli(["sample", "-c", model, "-n", "3", "--seed", "1", f"--prime={prime}", *(["--json"] if as_json else [])])


@fuzz(1.5)
@given(bundled=st.booleans(), content=FILE_BYTES)
def test_prime_files(models, bundled, content):
    # The bundled model reads some 3,000 characters a second on one thread: long primes go to the
    # tiny one.
    model = "shakespeare" if bundled and len(content) < 3000 else "lm"
    with models.workdir("lm") as work:
        (work / "prime.txt").write_bytes(content)
        run_cli(["sample", "-c", model, "-n", "3", "--seed", "1", "--prime-file", "prime.txt"])


@fuzz(2)
@given(command=st.sampled_from([["translate", "-c", "tr"], ["translate", "-c", "spa-eng", "--max-len", "20"],
                                ["classify", "-c", "cl"], ["classify", "-c", "sentiment"], ["embed", "-c", "tr"],
                                ["embed", "-c", "cl"]]),
       texts=st.lists(ODD_TEXT, min_size=1, max_size=4), as_json=st.booleans())
def test_text_arguments(models, command, texts, as_json):
    with models.workdir("tr", "cl"):
        run_cli([*command, *(["--json"] if as_json else []), "--", *texts])


@fuzz(2)
@given(command=st.sampled_from([["translate", "-c", "tr"], ["classify", "-c", "cl"], ["classify", "-c", "sentiment"],
                                ["embed", "-c", "cl"], ["embed", "-c", "tr", "--npy", "v.npy"]]),
       stdin=FILE_BYTES, encoding=st.one_of(st.just([]), TEXT_ENCODINGS.map(lambda e: ["--encoding", e])))
def test_stdin_bytes(models, command, stdin, encoding):
    with models.workdir("tr", "cl"):
        run_cli([*command, *encoding], stdin=stdin)


@fuzz(1)
@given(content=FILE_BYTES, k=st.sampled_from(["1", "3", "0", "-2", "nan", "1e9"]), as_json=st.booleans(),
       encoding=st.one_of(st.just([]), TEXT_ENCODINGS.map(lambda e: ["--encoding", e])))
def test_nearest_file_bytes(models, content, k, as_json, encoding):
    with models.workdir("cl"):
        Path("search.txt").write_bytes(content)
        outcome = run_cli(["embed", "-c", "cl", "--nearest", "search.txt", "-k", k, *encoding,
                           *(["--json"] if as_json else []), "--", "pizza great", ""])
        check_number_refusal(["-k", k], outcome)


@fuzz(1.5)
@given(content=FILE_BYTES, encoding=st.one_of(st.just([]), TEXT_ENCODINGS.map(lambda e: ["--encoding", e])),
       tokenizer=st.sampled_from([[], ["--tokenizer", "bpe", "--vocab-size", "260"]]), from_stdin=st.booleans(),
       condition=st.sampled_from([[], ["--condition", "label"], ["--condition", "text", "--condition-at", "start", "--skip-bad"],
                                        ["--condition", "label", "--condition-type", "vector", "--skip-bad"]]))
def test_corpus_bytes(models, content, encoding, tokenizer, from_stdin, condition):
    with models.workdir() as work:
        (work / "corpus.txt").write_bytes(content)
        corpus = "-" if from_stdin else "corpus.txt"
        run_cli(["train", corpus, "-o", "run", *LM_TRAIN, *tokenizer, *encoding, *condition], stdin=content if from_stdin else b"")


@fuzz(1.5)
@given(content=FILE_BYTES, gzipped=st.booleans(), flags=st.lists(st.sampled_from(["--skip-bad", "--reverse"]), unique=True))
def test_pair_file_bytes(models, content, gzipped, flags):
    with models.workdir() as work:
        name = "pairs.tsv.gz" if gzipped else "pairs.tsv"
        (work / name).write_bytes(gzip.compress(content) if gzipped else content)
        run_cli(["translate", "train", name, "-o", "run", *TR_TRAIN, "--test-size", "1", "--dev-size", "1", *flags])


@fuzz(1.5)
@given(files=st.lists(FILE_BYTES, min_size=1, max_size=3),
       encoding=st.one_of(st.just([]), TEXT_ENCODINGS.map(lambda e: ["--encoding", e])),
       skip_bad=st.booleans(), command=st.sampled_from(["train", "eval"]))
def test_labelled_file_bytes(models, files, encoding, skip_bad, command):
    with models.workdir("cl") as work:
        # One text<TAB>label file, or one file per class named by its label.
        names = ["data.tsv"] if len(files) == 1 else [f"data.{label}" for label in ("food", "sport", "weather")[: len(files)]]
        for name, content in zip(names, files):
            (work / name).write_bytes(content)
        flags = [*encoding, *(["--skip-bad"] if skip_bad else [])]
        if command == "train":
            run_cli(["classify", "train", *names, "-o", "run", *CL_TRAIN, *flags])
        else:
            run_cli(["classify", "eval", "-c", "cl", *[a for name in names for a in ("--data", name)], *flags])


@fuzz()
@given(data=FILE_BYTES)
def test_translate_eval_data_bytes(models, data):
    with models.workdir("tr") as work:
        (work / "held.tsv").write_bytes(data)
        run_cli(["translate", "eval", "-c", "tr", "--data", "held.tsv", "--examples", "1"])


# Cells of a series file that are not plain numbers: missing, NaN and infinite ones, numbers that
# overflow (or nearly: 1e308 is finite until it is scaled, squared or summed), tiny ones, and the
# ways people write numbers that are not Python's.
SERIES_CELLS = st.sampled_from(["", " ", "NaN", "nan", "NA", "null", "None", "inf", "-inf", "Infinity", "1e308", "-1e308",
                                "1.7976931348623157e308", "1e400", "1e-320", "5e-324", "0", "-0", "-1", "1,000",
                                "1,000.5", "1 000", "abc", "\uff11\uff12", "0x10", "1_000", "--1", "5%", "$5", "(5)",
                                '"', "1e", "\t7\t", "1e-308"])
# What a series file can have that a good one does not (each file has a few of these at most).
SERIES_ODDITIES = ["cells", "level", "shape", "date format", "step", "calendar", "disorder", "header", "separator",
                   "quoting", "line ends", "numbers", "one column", "many columns", "length"]


@st.composite
def series_files(draw) -> bytes:
    """A series file as users have them: a good monthly `Month,Sales` CSV with a few oddities:
    odd cells (NaN, inf, 1e308, thousands separators, words), odd levels (negative, 0, near the
    ends of the float range), odd shapes (constant, alternating, random), dates in other formats,
    steps and at the ends of the calendar, repeated, missing or out of order, odd or no headers,
    one column, many columns, other separators, quoting and line ends, one number a line."""
    odd = draw(st.sets(st.sampled_from(SERIES_ODDITIES), max_size=3))

    def pick(oddity: str, usual, strategy: st.SearchStrategy):
        return draw(strategy) if oddity in odd else usual

    count = pick("length", 80, st.integers(0, 100))
    level = pick("level", 100.0, st.sampled_from([1.0, -100.0, 0.0, 1e-300, 5e-324, 1e150, 1e300, 1e308, -1e308,
                                                  1.7976931348623157e308]))
    shape = pick("shape", "season", st.sampled_from(["growth", "constant", "alternating", "random"]))
    rng = random.Random(draw(st.integers(0, 2**16)))
    factor = {"growth": lambda i: 0.5 + 0.5 * i / max(1, count), "season": lambda i: 0.75 + 0.25 * math.sin(i),
              "constant": lambda i: 1.0, "alternating": lambda i: (-1) ** i, "random": lambda i: rng.uniform(-1, 1)}[shape]
    values = [repr(level * factor(i)) for i in range(count)]
    if "cells" in odd and count:
        for _ in range(draw(st.integers(1, 3))):
            values[draw(st.integers(0, count - 1))] = draw(SERIES_CELLS)
    layout = "many columns" if "many columns" in odd else "dated"
    layout = "one column" if "one column" in odd else "numbers" if "numbers" in odd else layout
    if layout in ("dated", "many columns"):
        fmt = pick("date format", "%Y-%m", st.sampled_from(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d",
                                                            "%d/%m/%Y", "%m/%d/%Y", "%Y", "%d.%m.%Y", "%b %Y", "%Y%m%d",
                                                            "%H:%M"]))
        unit, step = pick("step", ("months", 1), st.sampled_from([("months", 3), ("months", 12), ("days", 1), ("days", 7),
                                                                 ("hours", 1), ("minutes", 1), ("days", 2)]))
        start = pick("calendar", datetime(1990, 1, 1), st.sampled_from([datetime(1, 1, 1), datetime(1990, 1, 31),
                                                                         datetime(9990, 1, 1), datetime(9999, 1, 31)]))
        rows = []
        for i, value in enumerate(values):
            try:
                if unit == "months":
                    year, month = start.year + (start.month - 1 + step * i) // 12, (start.month - 1 + step * i) % 12 + 1
                    when = start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))
                else:
                    when = start + timedelta(**{unit: step * i})
            except (ValueError, OverflowError):  # past the end of the calendar: the file ends there
                break
            rows.append([when.strftime(fmt), value])
        if "disorder" in odd and len(rows) > 2:
            i, how = draw(st.integers(1, len(rows) - 2)), draw(st.sampled_from(["repeat", "gap", "swap", "reverse"]))
            if how == "repeat":
                rows.insert(i, list(rows[i]))
            elif how == "gap":
                del rows[i]
            elif how == "swap":
                rows[i], rows[i + 1] = rows[i + 1], rows[i]
            else:
                rows.reverse()
        header = pick("header", ("Month", "Sales"), st.sampled_from([
            None, ("date", "value"), ("", ""), ("a,b", 'say "hi"'), ("Month", "Month"), ("\U0001f642", "\u00fcn\u00efcode"),
            ("Sales", "Month"), ("Sales", "Sales"), ("NaN", "1"), ("2000-01", "1.5"), ("Month", "Sales\nline two")]))
        if layout == "many columns":
            extra = draw(st.sampled_from([1, 2, 40]))
            rows = [row + [draw(st.sampled_from([str(j), "x", "", "1e308"])) for j in range(extra)] for row in rows]
            header = header and (*header, *[f"x{j}" for j in range(extra)])
        rows = ([list(header)] if header else []) + rows
    else:
        rows = ([["Sales"]] if layout == "one column" else []) + [[value] for value in values]
    text = io.StringIO()
    csv.writer(text, delimiter=pick("separator", ",", st.sampled_from([";", "\t", " ", "|"])),
               quoting=pick("quoting", csv.QUOTE_MINIMAL, st.sampled_from([csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])),
               lineterminator=pick("line ends", "\n", st.sampled_from(["\r\n", "\r", "\n\n"]))).writerows(rows)
    return text.getvalue().encode(draw(st.sampled_from(["utf-8", "utf-8-sig"])))


@fuzz(2.5)
@given(command=st.sampled_from(["train", "predict", "eval", "inspect"]), content=st.one_of(series_files(), FILE_BYTES),
       from_stdin=st.booleans(), reading=st.sampled_from([[], ["--fill", "previous"], ["--fill", "linear"],
                                                          ["--column", "Sales"]]))
def test_forecast_series_bytes(models, command, content, from_stdin, reading):
    with models.workdir("fc") as work:
        (work / "series.csv").write_bytes(content)
        series = "-" if from_stdin else "series.csv"
        argv = {"train": ["forecast", "train", series, "-o", "run", *FC_TRAIN],
                "predict": ["forecast", "predict", "-c", "fc", series, "--json"],
                "eval": ["forecast", "eval", "-c", "fc", series],
                "inspect": ["forecast", "inspect", series]}[command]
        run_cli([*argv, *reading], stdin=content if from_stdin else b"")


# -- checkpoints: cut, flipped, restructured ---------------------------------------------------

# (run, file in it): the tiny runs' checkpoints, best.pt for inference and last.pt to resume.
CHECKPOINTS = [(run, file) for run in ("lm", "tr", "cl", "fc") for file in ("best.pt", "last.pt")]


def commands_on(run: str, file: str) -> list[list[str]]:
    """Every command that reads the checkpoint run/file (in the workdir as run/)."""
    path = f"{run}/{file}"
    resume = {"lm": ["train", "--resume", run, *LM_TRAIN, "--max-steps", "12"],
              "tr": ["translate", "train", "--resume", run, *TR_TRAIN, "--max-steps", "12"],
              "cl": ["classify", "train", "--resume", run, *CL_TRAIN, "--max-steps", "12"],
              "fc": ["forecast", "train", "--resume", run, *FC_TRAIN, "--max-steps", "12"]}
    return [
        ["info", path], ["info", "--json", path],
        ["sample", "-c", path, "-n", "5", "--seed", "1"],
        ["translate", "-c", path, "abc", "where is it"],
        ["translate", "eval", "-c", path, "--examples", "1", "--beam", "2"],
        ["classify", "-c", path, "pizza great", ""],
        ["classify", "eval", "-c", path],
        ["forecast", "eval", "-c", path, "--no-classical"],
        ["forecast", "eval", "-c", path, "sales.csv", "--json"],
        ["forecast", "predict", "-c", path],
        ["forecast", "predict", "-c", path, "sales.csv", "--horizon", "2"],
        ["export", path, "exported.pt", "--half"],
        ["runs", "."],
        ["plot", run, "-o", "curves.png"],
        resume[run],
    ]


def _command_for(run: str, file: str) -> st.SearchStrategy:
    own = {"lm": ("info", "sample", "export", "train"), "tr": ("info", "translate", "export"),
           "cl": ("info", "classify", "export"), "fc": ("info", "forecast", "export")}[run]
    every = commands_on(run, file)
    # Mostly the commands of the checkpoint's own task (a mutation there gets furthest), then any.
    return st.one_of(st.sampled_from([c for c in every if c[0] in own]), st.sampled_from(every))


@fuzz(2)
@given(target=st.sampled_from(CHECKPOINTS).flatmap(lambda rf: st.tuples(st.just(rf), _command_for(*rf))),
       cut=st.floats(0, 1, exclude_max=True), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                                      st.integers(1, 255)), max_size=8),
       truncate=st.booleans())
def test_damaged_checkpoint_files(models, target, cut, flips, truncate):
    (run, file), argv = target
    with models.workdir(run, "corpus.txt", "pairs.tsv", "labelled.tsv", "sales.csv") as work:
        path = work / run / file
        data = bytearray(path.read_bytes())
        for where, mask in flips:
            data[int(where * len(data))] ^= mask
        if truncate:
            data = data[: int(cut * len(data))]
        path.write_bytes(bytes(data))
        run_cli(argv)


def key_paths(tree, prefix=()):
    """The path (keys and list indices) of every value in nested dicts and lists."""
    if isinstance(tree, dict):
        items = list(tree.items())
    elif isinstance(tree, list):
        items = list(enumerate(tree))
    else:
        return
    for key, value in items:
        yield (*prefix, key)
        yield from key_paths(value, (*prefix, key))


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


REPLACEMENTS = [None, 0, -1, 1, 2**62, 2**70, 1.5, math.nan, math.inf, -math.inf, "", "x", "🙂", [], {}, True, False,
                [1, 2, 3], {"a": 1}, ["x", None], "lstm", "cuda", "../../etc/passwd"]


def _tensor_variant(value: torch.Tensor, how: str, extra: int) -> torch.Tensor:
    """value changed as TENSOR_CHANGES names: another shape (zeros), other contents, another dtype."""
    shape = list(value.shape)
    if how == "smaller" and shape:
        shape[extra % len(shape)] = max(0, shape[extra % len(shape)] - 1 - extra)
    elif how == "larger" and shape:
        shape[extra % len(shape)] += 1 + extra
    elif how == "flat":
        shape = [value.numel()]
    elif how == "extra-dim":
        shape = [*shape, 1]
    elif how == "scalar":
        shape = []
    elif how == "empty":
        shape = [0]
    if how in ("nan", "inf", "huge", "negative"):
        fill = {"nan": math.nan, "inf": math.inf, "huge": 2**62, "negative": -1 - extra}[how]
        if value.is_floating_point():
            return torch.full_like(value, float(fill))
        if value.dtype == torch.bool or how in ("nan", "inf"):
            return value.to(torch.float32).fill_(float(fill))
        return torch.full_like(value, int(fill))
    if how in ("float16", "int64", "bool", "complex64"):
        return value.to(getattr(torch, how))
    return torch.zeros(shape, dtype=value.dtype)


TENSOR_CHANGES = ["smaller", "larger", "flat", "extra-dim", "scalar", "empty", "nan", "inf", "huge", "negative",
                  "float16", "int64", "bool", "complex64"]


@st.composite
def restructured(draw, stored: dict):
    """A checkpoint's stored dict with one value deleted, retyped, reshaped or refilled, and what
    was done (for the failure message)."""
    path = draw(st.sampled_from(list(key_paths(stored))))
    parent, key = _get(stored, path[:-1]), path[-1]
    value = parent[key]
    actions = ["delete", "retype"] + (["tensor"] if isinstance(value, torch.Tensor) else [])
    action = draw(st.sampled_from(actions))
    if action == "delete":
        del parent[key]
        return f"deleted {path}"
    if action == "retype":
        new = draw(st.one_of(st.sampled_from(REPLACEMENTS), st.integers(), st.text(max_size=5),
                             st.just(torch.zeros(2, 2)), st.just(torch.tensor([1, 2, 3]))))
        parent[key] = new
        return f"set {path} to {new!r}"
    how, extra = draw(st.sampled_from(TENSOR_CHANGES)), draw(st.integers(0, 3))
    parent[key] = _tensor_variant(value, how, extra)
    return f"{how} ({extra}) {path}: {tuple(value.shape)} {value.dtype} -> {tuple(parent[key].shape)} {parent[key].dtype}"


@fuzz(4)
@given(target=st.sampled_from(CHECKPOINTS).flatmap(lambda rf: st.tuples(st.just(rf), _command_for(*rf))), data=st.data())
def test_restructured_checkpoints(models, target, data):
    (run, file), argv = target
    with models.workdir(run, "corpus.txt", "pairs.tsv", "labelled.tsv", "sales.csv") as work:
        path = work / run / file
        stored = torch.load(path, map_location="cpu", weights_only=True)
        change = data.draw(restructured(stored), label="change")
        torch.save(stored, path)
        try:
            run_cli(argv)
        except BaseException as exc:
            exc.add_note(f"fuzz: the checkpoint {run}/{file} had {change}")
            raise


@fuzz()
@given(run=st.sampled_from(["lm", "tr", "cl", "fc"]), log=FILE_BYTES, command=st.sampled_from(["runs", "plot", "resume", "info"]))
def test_damaged_logs(models, run, log, command):
    with models.workdir(run, "corpus.txt", "pairs.tsv", "labelled.tsv", "sales.csv") as work:
        (work / run / "log.jsonl").write_bytes(log)
        argv = {"runs": ["runs", "."], "plot": ["plot", run, "-o", "curves.png"], "info": ["info", run],
                "resume": commands_on(run, "last.pt")[-1]}[command]
        run_cli(argv)


# -- paths, outputs, finished runs, notes and downloads -----------------------------------------


def _make_path(kind: str, work: Path) -> str:
    """A path of the given kind inside work (made as needed): never anywhere else, since some
    commands write where they are told."""
    (work / "folder").mkdir(exist_ok=True)
    (work / "file.txt").write_text("hello world\n" * 50)
    if kind == "loop" and not (work / "loop").is_symlink():
        (work / "loop").symlink_to("loop")
    if kind == "dangling" and not (work / "dangling").is_symlink():
        (work / "dangling").symlink_to("nowhere/x")
    return {
        "missing": "missing.pt", "missing-folder": "no/such/folder/x.pt", "folder": "folder",
        "folder-slash": "folder/", "inside-file": "file.txt/x.pt", "file-slash": "file.txt/", "empty": "",
        "dot": ".", "dotdot-missing": "../no-such-fuzz-folder/x.pt", "long-name": "x" * 300,
        "long-path": "/".join(["d" * 200] * 30), "newline": "a\nb.pt", "unicode": "mödel 🙂.pt",
        "loop": "loop", "dangling": "dangling", "dash": "-", "text-file": "file.txt",
        "surrogate": surrogate_escaped(b"m\xffx.pt"), "png": "new.png", "png-missing-folder": "no/such/x.png",
        "png-inside-file": "file.txt/x.png", "no-suffix": "newfile", "upper-png": "NEW.PNG",
    }[kind]


PATH_KINDS = ["missing", "missing-folder", "folder", "folder-slash", "inside-file", "file-slash", "empty", "dot",
              "dotdot-missing", "long-name", "long-path", "newline", "unicode", "loop", "dangling", "dash",
              "text-file", "surrogate", "png", "png-missing-folder", "png-inside-file", "no-suffix", "upper-png"]


def _path_commands(p: str) -> list[list[str]]:
    """Every place a command takes a path, with p there; the other paths valid."""
    return [
        ["info", p], ["sample", "-c", p, "-n", "3"], ["sample", "-c", "lm", "-n", "3", "--prime-file", p],
        ["export", p, "out.pt"], ["export", "lm/best.pt", p],
        ["translate", "-c", p, "abc"], ["translate", "-c", "tr", "--plot", p, "abc"],
        ["translate", "eval", "-c", p], ["translate", "eval", "-c", "tr", "--data", p, "--examples", "0"],
        ["classify", "-c", p, "pizza"], ["classify", "eval", "-c", p], ["classify", "eval", "-c", "cl", "--data", p],
        ["classify", "eval", "-c", "cl", "--plot", p],
        ["train", p, "-o", "run", *LM_TRAIN], ["train", "corpus.txt", "-o", p, *LM_TRAIN],
        ["train", "corpus.txt", "--resume", p, *LM_TRAIN, "--max-steps", "12"], ["train", "--resume", p, *LM_TRAIN],
        ["translate", "train", p, "-o", "run", *TR_TRAIN], ["translate", "train", "pairs.tsv", "-o", p, *TR_TRAIN],
        ["classify", "train", p, "-o", "run", *CL_TRAIN], ["classify", "train", "labelled.tsv", "-o", p, *CL_TRAIN],
        ["classify", "train", "labelled.tsv", "--resume", p, *CL_TRAIN],
        ["forecast", "train", p, "-o", "run", *FC_TRAIN], ["forecast", "train", "sales.csv", "-o", p, *FC_TRAIN],
        ["forecast", "train", "--resume", p, *FC_TRAIN, "--max-steps", "12"],
        ["forecast", "eval", "-c", p, "--no-classical"], ["forecast", "eval", "-c", "fc", p, "--no-classical"],
        ["forecast", "eval", "-c", "fc", "--no-classical", "--plot", p], ["forecast", "predict", "-c", p],
        ["forecast", "predict", "-c", "fc", p], ["forecast", "predict", "-c", "fc", "--plot", p],
        ["forecast", "inspect", p], ["forecast", "inspect", "sales.csv", "--plot", p],
        ["runs", p], ["plot", p], ["plot", "lm", "-o", p],
        ["plot", "lm", "-o", p + ".png"],
    ]


@fuzz(3)
@given(kind=st.sampled_from(PATH_KINDS), which=st.integers(0, len(_path_commands("x")) - 1))
def test_bad_paths(models, kind, which):
    with models.workdir("lm", "tr", "cl", "fc", "corpus.txt", "pairs.tsv", "labelled.tsv", "sales.csv") as work:
        run_cli(_path_commands(_make_path(kind, work))[which])


@fuzz()
@given(kind=st.sampled_from(["file", "inside-file", "missing-deep", "folder", "empty"]),
       command=st.sampled_from(["train", "classify"]))
def test_cache_that_cannot_be_used(models, kind, command):
    with models.workdir("corpus.txt", "labelled.tsv") as work, pytest.MonkeyPatch.context() as patch:
        (work / "a-file").write_text("not a folder")
        (work / "a-folder").mkdir()
        cache = {"file": "a-file", "inside-file": "a-file/cache", "missing-deep": "x/y/z", "folder": "a-folder",
                 "empty": ""}[kind]
        patch.setenv("CHARRNN_CACHE", str(work / cache) if cache else "")
        argv = (["train", "corpus.txt", "-o", "run", *LM_TRAIN] if command == "train"
                else ["classify", "train", "labelled.tsv", "-o", "run", *CL_TRAIN])
        run_cli(argv)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@fuzz(0.5)
@given(command=st.sampled_from(["resume", "train", "export", "plot", "cache", "download", "forecast resume",
                                "forecast train", "forecast plot"]))
def test_read_only_places(models, command):
    # Each command must stop with a one-line error and leave the read-only place as it was.
    with models.workdir("lm", "fc", "corpus.txt", "sales.csv") as work, pytest.MonkeyPatch.context() as patch:
        (work / "ro").mkdir()
        argv = {
            "resume": ["train", "--resume", "lm", *LM_TRAIN, "--max-steps", "12"],
            "train": ["train", "corpus.txt", "-o", "ro/run", *LM_TRAIN],
            "export": ["export", "lm/best.pt", "ro/out.pt"],
            "plot": ["plot", "lm", "-o", "ro/curves.png"],
            "cache": ["train", "corpus.txt", "-o", "run", *LM_TRAIN],
            "download": ["corpus", "download", "tinyshakespeare", "--dest", "ro/corpora", "--url",
                         (work / "corpus.txt").as_uri()],
            "forecast resume": ["forecast", "train", "--resume", "fc", *FC_TRAIN, "--max-steps", "12"],
            "forecast train": ["forecast", "train", "sales.csv", "-o", "ro/run", *FC_TRAIN],
            "forecast plot": ["forecast", "inspect", "sales.csv", "--plot", "ro/parts.png"],
        }[command]
        if command == "cache":
            patch.setenv("CHARRNN_CACHE", str(work / "ro" / "cache"))
        locked = [work / "ro", work / "lm", work / "fc"]
        for folder in locked:
            folder.chmod(0o555)
        try:
            outcome = run_cli(argv)
        finally:
            for folder in locked:
                folder.chmod(0o755)
        assert outcome.code != 0, f"{outcome.command} wrote into a read-only folder?"


@fuzz()
@given(run=st.sampled_from(["lm", "tr", "cl", "fc"]),
       stop=st.one_of(st.just([]), st.integers(1, 10).map(lambda n: ["--max-steps", str(n)])))
def test_resume_of_a_finished_run(models, run, stop):
    # The tiny runs stopped at --max-steps 10: resuming one with no new stop, or one it has
    # reached, trains nothing and writes no checkpoint (issue 14, "a no-op with a clear message").
    command = {"lm": ["train"], "tr": ["translate", "train"], "cl": ["classify", "train"], "fc": ["forecast", "train"]}[run]
    with models.workdir(run, "corpus.txt", "pairs.tsv", "labelled.tsv", "sales.csv") as work:
        before = {name: (work / run / name).read_bytes() for name in ("best.pt", "last.pt")}
        outcome = run_cli([*command, "--resume", run, "-q", "--device", "cpu", *stop])
        changed = [name for name, data in before.items() if (work / run / name).read_bytes() != data]
        assert not changed, f"{outcome.command} (exit {outcome.code}) rewrote {changed} of a finished run"


@fuzz()
@given(notes=st.lists(st.one_of(TEXT, ODD_TEXT, st.tuples(TEXT, ODD_TEXT).map("=".join)), max_size=3),
       source=st.sampled_from(["lm/best.pt", "tr", "cl/last.pt", "sentiment", "fc", "airline"]), half=st.booleans())
def test_export_notes(models, notes, source, half):
    with models.workdir("lm", "tr", "cl", "fc"):
        run_cli(["export", source, "out.pt", *(["--half"] if half else []), *[a for n in notes for a in ("--note", n)]])


@fuzz()
@given(name=st.one_of(st.sampled_from(["tinyshakespeare", "spa-eng", "rt-polarity"]), TEXT),
       url=st.one_of(st.sampled_from(["file", "file-missing", "file-folder", "ftp://example.invalid/x", "not a url",
                                      "file://", "file:///", "http//x", "javascript:alert(1)"]),
                     TEXT.map(lambda t: "x:" + t)),
       dest=st.sampled_from(["corpora", "file.txt", "file.txt/inside", "folder", "new/deep/dest"]), content=FILE_BYTES)
def test_corpus_download_offline(models, name, url, dest, content):
    # Every download gets a --url that is no network address (not even "", which means the
    # manifest's): this suite never reaches the network.
    with models.workdir() as work:
        (work / "file.txt").write_text("keep me\n")
        (work / "folder").mkdir()
        (work / "served.txt").write_bytes(content)
        url = {"file": (work / "served.txt").as_uri(), "file-missing": (work / "nothing.txt").as_uri(),
               "file-folder": (work / "folder").as_uri()}.get(url, url)
        run_cli(["corpus", "download", name, "--dest", dest, "--url", url])


# -- Ctrl-C ------------------------------------------------------------------------------------


# No shrinking: the moment is what varies, and each try of one costs the time up to it and the stop.
@settings(fuzz(0.5), phases=NO_SHRINKING)
@given(after=st.floats(0, 0.6), command=st.sampled_from(["train", "sample", "translate", "classify", "resume",
                                                        "forecast train"]))
def test_ctrl_c_at_any_moment(models, after, command):
    with models.workdir("lm", "corpus.txt", "tr", "cl", "sales.csv"):
        argv, stdin = {
            "train": (["train", "corpus.txt", "-o", "run", *LM_TRAIN, "--max-steps", "100000", "--epochs", "1000",
                       "--time-budget", "3"], b""),
            "resume": (["train", "--resume", "lm", *LM_TRAIN, "--max-steps", "100000", "--epochs", "1000",
                        "--time-budget", "3"], b""),
            "sample": (["sample", "-c", "lm", "-n", "200000"], b""),
            "translate": (["translate", "-c", "tr"], b"abc def\n" * 20000),
            "classify": (["classify", "-c", "cl"], b"pizza great\n" * 20000),
            # --patience 0: early stopping would end the tiny run before the moment comes.
            "forecast train": (["forecast", "train", "sales.csv", "-o", "run", *FC_TRAIN, "--max-steps", "100000",
                                "--epochs", "1000", "--time-budget", "3", "--patience", "0"], b""),
        }[command]
        outcome = run_cli(argv, stdin=stdin, interrupt_after=after)
        where = f"{outcome.command}: Ctrl-C after {after:.2f} s exited {outcome.code}; stderr:\n{outcome.stderr}"
        assert outcome.code in (0, 130), where
        # A training run stopped by Ctrl-C is saved and says so in its summary (nothing with -q);
        # any other command stopped by it says so in one line.
        if outcome.code == 130 and command not in ("train", "resume", "forecast train"):
            assert outcome.stderr.startswith(ERROR_PREFIX), f"no error line: {where}"
