"""Reading corpora (files or stdin), checking them, encoding them once into a token file read in
slices, the train/validation split, the parallel streams that stateful truncated BPTT reads, and
the padded, length-bucketed batches of whole sequences that the translator and classifier read."""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import write_atomically
from .distributed import Ranks
from .errors import CharrnnError, UsageError
from .output_files import make_output_folder
from .text_encoding import check_encoding, not_in_encoding
from .vocab import Vocab, format_characters

CHUNK_BYTES = 4 * 1024 * 1024  # corpora are read and encoded in pieces of this size: flat memory
BINARY_SNIFF_BYTES = 8192


def default_cache_dir() -> Path:
    """Where encoded token files are kept between runs: $CHARRNN_CACHE, else ~/.cache/charrnn."""
    env = os.environ.get("CHARRNN_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "charrnn"


# -- reading and checking ----------------------------------------------------------------------


def stage_corpus(source: str, work_dir: Path) -> Path:
    """Return a path to read the corpus from. '-' copies stdin to a file in work_dir first,
    because the corpus is read more than once (vocabulary, then encoding)."""
    if source != "-":
        from .corpora import locate_data_file

        return locate_data_file(source, "corpus")
    work_dir.mkdir(parents=True, exist_ok=True)
    staged = work_dir / "stdin-corpus.txt"
    with open(staged, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, CHUNK_BYTES)
    return staged


def iter_text_chunks(path: Path, encoding: str = "utf-8", *, label: str | None = None) -> Iterator[str]:
    """Yield the decoded text of a corpus in pieces, checking it on the way.

    Raises a one-line CharrnnError for an empty file, a binary file, or bytes that are not valid
    in the encoding (naming the byte offset and the --encoding fix).
    """
    label = label or str(path)
    check_encoding(encoding)
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise CharrnnError(f"cannot read corpus {label}: {exc.strerror}") from None
    with handle:
        while True:
            raw = handle.read(CHUNK_BYTES)
            if offset == 0:
                if not raw:
                    raise CharrnnError(f"corpus {label} is empty; give a file with some text in it")
                if b"\x00" in raw[:BINARY_SNIFF_BYTES] and not encoding.lower().startswith("utf-16") and not encoding.lower().startswith("utf-32"):
                    raise CharrnnError(f"corpus {label} looks like a binary file (it has NUL bytes); give a text file")
            final = not raw
            try:
                text = decoder.decode(raw, final=final)
            except UnicodeError as exc:
                at = f"at byte offset {offset + exc.start}" if isinstance(exc, UnicodeDecodeError) else ""
                raise not_in_encoding(f"corpus {label}", encoding, exc, position=at) from None
            if text:
                yield text
            if final:
                return
            offset += len(raw)


# -- encoding into a token file ----------------------------------------------------------------


@dataclass
class TokenFile:
    """A corpus encoded as a flat array of token ids on disk (raw, in the smallest integer type
    that holds the vocabulary)."""

    path: Path
    dtype: str
    length: int

    def open(self) -> TokenReader:
        return TokenReader(self.path, self.dtype, self.length)


class TokenReader:
    """Slices of a token file, read with positioned reads (os.pread) instead of a memory map.

    The file is a raw array (np.memmap(path, dtype) opens it too), but training reads
    batch_size streams scattered through it, and mapping it made resident memory grow with the
    corpus: on current Linux kernels a page fault maps the whole large folio of page cache around
    it (measured: 2 MB per stream touched, +130 MB for a 200 MB corpus at 64 streams, however the
    map is advised). Reads copy just the bytes asked for; the kernel's page cache still serves
    repeated reads.
    """

    def __init__(self, path: Path, dtype: str, length: int):
        self.dtype = np.dtype(dtype)
        self.length = length
        self._file = open(path, "rb")  # noqa: SIM115 - lives as long as the reader

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, step = index.indices(self.length)
        if step != 1:
            raise IndexError("token files are read in contiguous slices")
        count = max(0, stop - start)
        data = os.pread(self._file.fileno(), count * self.dtype.itemsize, start * self.dtype.itemsize)
        return np.frombuffer(data, dtype=self.dtype)


def smallest_dtype(vocab_size: int) -> str:
    if vocab_size <= 2**8:
        return "uint8"
    if vocab_size <= 2**16:
        return "uint16"
    return "uint32"


def corpus_key(path: Path, encoding: str) -> str:
    """Identify a corpus file by path, size and modification time: cheap to compute and changes
    whenever the file does, so a cached token file is never stale."""
    stat = path.stat()
    ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{encoding}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def build_vocab(path: Path, *, kind: str, vocab_size: int, encoding: str, label: str) -> Vocab:
    """Build the vocabulary of a corpus in one streaming pass."""
    if kind == "char":
        seen: set[str] = set()
        for chunk in iter_text_chunks(path, encoding, label=label):
            seen.update(chunk)
        return Vocab.build_char(seen)
    if kind == "bpe":
        return Vocab.train_bpe(iter_text_chunks(path, encoding, label=label), vocab_size)
    raise UsageError(f"unknown --tokenizer {kind!r}; choose char or bpe")


def encode_to_token_file(
    path: Path, vocab: Vocab, *, encoding: str, cache_dir: Path, label: str, reuse: bool = True
) -> TokenFile:
    """Encode the corpus once into cache_dir/<key>.tokens (the smallest integer type that holds
    the vocabulary), or reuse the file an earlier run made for the same corpus and vocabulary."""
    make_output_folder(cache_dir, "the token cache ($CHARRNN_CACHE)")
    stem = f"{corpus_key(path, encoding)}-{vocab.fingerprint()}"
    token_path = cache_dir / f"{stem}.tokens"
    meta_path = cache_dir / f"{stem}.json"
    dtype = smallest_dtype(vocab.size)
    if reuse and token_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("dtype") == dtype and token_path.stat().st_size == meta["length"] * np.dtype(dtype).itemsize:
            return TokenFile(token_path, dtype, meta["length"])
    length = 0
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in iter_text_chunks(path, encoding, label=label):
                try:
                    ids = vocab.encode_array(chunk)
                except CharrnnError:
                    missing = vocab.unknown_characters(chunk)
                    raise CharrnnError(
                        f"corpus {label} has characters the model's vocabulary lacks: {format_characters(missing)}"
                    ) from None
                out.write(ids.astype(dtype).tobytes())
                length += len(ids)
        os.replace(tmp_name, token_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    # Atomically: under torchrun every rank of a machine encodes the corpus at once, and one may
    # read the description while another writes it.
    meta = json.dumps({"source": str(path), "length": length, "dtype": dtype}).encode()
    write_atomically(meta_path, lambda handle: handle.write(meta))
    return TokenFile(token_path, dtype, length)


# -- splits and batches ------------------------------------------------------------------------


def split_point(length: int, val_frac: float) -> int:
    """Index where validation starts: the last val_frac of the tokens, as nanoGPT splits, so
    validation figures compare with theirs."""
    if not 0.0 < val_frac < 1.0:
        raise UsageError(f"--val-frac must be between 0 and 1 (exclusive), not {val_frac}")
    return length - int(round(length * val_frac))


def check_one_batch(train_tokens: int, batch_size: int, seq_len: int) -> None:
    """Refuse a corpus too short to give each of batch_size streams one window of seq_len."""
    if train_tokens // batch_size < seq_len + 1:
        raise CharrnnError(
            f"corpus too short: {train_tokens} training tokens, need at least {batch_size * (seq_len + 1)} for one "
            f"batch of {batch_size} x {seq_len}; use a longer corpus or lower --batch-size / --seq-len"
        )


class StreamBatches:
    """Stateful truncated-BPTT batches: the token range is cut into batch_size contiguous
    streams read side by side, seq_len tokens at a time, so row b of one batch continues row b
    of the previous one and the hidden state can be carried across windows.

    position is the offset of the next window inside every stream; it is all the state there is,
    so saving it in a checkpoint resumes the data exactly.

    Under torchrun each rank reads its own streams, an equal contiguous share of the batch_size
    (rows: see Ranks.share), so the ranks' batches together are the batch one process reads.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, *, start: int = 0, end: int | None = None,
                 rows: range | None = None):
        end = len(tokens) if end is None else end
        self.tokens = tokens
        self.start = start
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.stream_len = (end - start) // batch_size
        check_one_batch(end - start, batch_size, seq_len)
        self.rows = rows if rows is not None else range(batch_size)  # the streams this process reads
        self.position = 0

    @property
    def windows_per_epoch(self) -> int:
        return (self.stream_len - 1) // self.seq_len

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Return (x, y, wrapped): inputs and next-token targets, each (B, T) int64, and whether
        the streams just wrapped to their beginning (the carried state must then be reset)."""
        wrapped = False
        if self.position + self.seq_len + 1 > self.stream_len:
            self.position = 0
            wrapped = True
        rows = []
        for b in self.rows:
            begin = self.start + b * self.stream_len + self.position
            rows.append(np.asarray(self.tokens[begin : begin + self.seq_len + 1], dtype=np.int64))
        window = torch.from_numpy(np.stack(rows))  # (B, T + 1), B this process's rows
        self.position += self.seq_len
        return window[:, :-1], window[:, 1:], wrapped


def validation_windows(tokens: np.ndarray, start: int, end: int, num_streams: int, seq_len: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every token of [start, end) after the first exactly once as a target, read in num_streams
    parallel streams window by window (the caller carries the state across windows).

    The few tokens that do not divide evenly into the streams directly follow the last stream,
    so they come last as windows of one row: the caller continues them from the last row's state.
    """
    length = end - start - 1  # the last token has no next token to predict
    num_streams = max(1, min(num_streams, length))
    stream_len = length // num_streams

    def window(begins: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [np.asarray(tokens[b : b + width + 1], dtype=np.int64) for b in begins]
        both = torch.from_numpy(np.stack(rows))  # (rows, width + 1)
        return both[:, :-1], both[:, 1:]

    for position in range(0, stream_len, seq_len):
        width = min(seq_len, stream_len - position)
        yield window([start + b * stream_len + position for b in range(num_streams)], width)
    tail_start = start + num_streams * stream_len
    for position in range(tail_start, end - 1, seq_len):
        yield window([position], min(seq_len, end - 1 - position))


# -- batches of whole sequences (pairs, labelled texts) -----------------------------------------


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, longest) ids padded with pad_id, on device, and (B,) lengths (on the CPU, where
    packing wants them)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    padded = torch.full((len(sequences), max(1, int(lengths.max()))), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        padded[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return padded.to(device), lengths


class BucketedBatches:
    """Batches of examples of similar length (little padding, so little wasted work), in a new
    seeded order every epoch. The position is just (epoch, index), so saving it in a checkpoint
    resumes the data exactly. The last examples of an epoch that do not fill a batch wait for the
    next epoch's shuffle.

    Under torchrun, every rank draws the same global batches (the same seed) and takes its share
    of each: every world_size-th example from its rank on. A batch is sorted by length, so each
    share holds a like mix of lengths (and of work); the shares together are the batch one process
    trains on, and the position is the same on every rank."""

    WINDOW_BATCHES = 50  # examples are sorted by length within windows of this many batches

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int, ranks: Ranks = Ranks()):
        if len(lengths) < batch_size:
            raise CharrnnError(f"only {len(lengths)} training examples, fewer than one batch of {batch_size}; "
                               "use more data or a smaller --batch-size")
        ranks.share(batch_size, "--batch-size")  # refuses a batch that does not divide among the ranks
        self.ranks = ranks
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.batches_per_epoch = len(self.lengths) // batch_size
        self.epoch = 0
        self.index = 0
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 100003 + epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        B = self.batch_size
        # The examples that do not fill a batch are set aside before sorting, so they are a random
        # few each epoch. Set aside after sorting, they were the longest of the last window every
        # epoch: on data smaller than a window, the same longest texts were never trained on.
        order = order[: len(order) // B * B]
        batches = []
        # Sorting only within windows keeps the epoch's order random while batches pad little.
        window = self.WINDOW_BATCHES * B
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=self.lengths.__getitem__)
            batches.extend(chunk[k : k + B] for k in range(0, len(chunk) - B + 1, B))
        rng.shuffle(batches)
        return batches

    def next(self) -> list[int]:
        """The indices of the next batch's examples (this rank's share of them)."""
        if self.index >= len(self._order):
            self.epoch += 1
            self.index = 0
            self._order = self._epoch_order(self.epoch)
        batch = self._order[self.index]
        self.index += 1
        return batch[self.ranks.rank :: self.ranks.world_size]

    def state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._order = self._epoch_order(self.epoch)
