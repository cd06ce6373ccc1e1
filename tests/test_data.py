"""Corpus checks, the token file, the split, the truncated-BPTT streams and the batches of whole
sequences."""

import numpy as np
import pytest

from charrnn.data import (
    BucketedBatches,
    StreamBatches,
    build_vocab,
    encode_to_token_file,
    iter_text_chunks,
    pad_batch,
    smallest_dtype,
    split_point,
    validation_windows,
)
from charrnn.errors import CharrnnError


def test_bad_corpora_are_named(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(CharrnnError, match="empty"):
        list(iter_text_chunks(empty))
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CharrnnError, match="binary"):
        list(iter_text_chunks(binary))
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(CharrnnError, match="--encoding") as err:
        list(iter_text_chunks(latin))
    assert "offset 3" in str(err.value)
    assert "".join(iter_text_chunks(latin, "latin-1")) == "caf\u00e9 au lait\n"


def test_multibyte_characters_across_chunk_boundaries(tmp_path, monkeypatch):
    import charrnn.data as data

    monkeypatch.setattr(data, "CHUNK_BYTES", 7)  # cut inside multi-byte characters
    text = "añb€c😀d" * 9
    path = tmp_path / "u.txt"
    path.write_text(text, encoding="utf-8")
    assert "".join(iter_text_chunks(path)) == text


def test_token_file_is_encoded_once_and_reused(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello world\n" * 50)
    vocab = build_vocab(path, kind="char", vocab_size=0, encoding="utf-8", label="c.txt")
    first = encode_to_token_file(path, vocab, encoding="utf-8", cache_dir=tmp_path / "cache", label="c.txt")
    assert first.dtype == "uint8"
    tokens = first.open()
    assert len(tokens) == len(path.read_text())
    assert vocab.decode(tokens[0 : len(tokens)].tolist()) == path.read_text()
    mtime = first.path.stat().st_mtime_ns
    second = encode_to_token_file(path, vocab, encoding="utf-8", cache_dir=tmp_path / "cache", label="c.txt")
    assert second.path == first.path and second.path.stat().st_mtime_ns == mtime
    # Editing the corpus invalidates the cache entry.
    path.write_text("hello there\n" * 50)
    third = encode_to_token_file(path, build_vocab(path, kind="char", vocab_size=0, encoding="utf-8", label="c"),
                                 encoding="utf-8", cache_dir=tmp_path / "cache", label="c.txt")
    assert third.path != first.path


def test_smallest_dtype():
    assert smallest_dtype(65) == "uint8"
    assert smallest_dtype(256) == "uint8"
    assert smallest_dtype(257) == "uint16"
    assert smallest_dtype(70000) == "uint32"


def test_split_is_the_last_fraction():
    assert split_point(1000, 0.1) == 900
    with pytest.raises(CharrnnError):
        split_point(1000, 1.5)


def test_streams_continue_row_by_row_and_wrap():
    tokens = np.arange(1000)
    batches = StreamBatches(tokens, batch_size=4, seq_len=10, end=900)
    assert batches.stream_len == 225
    x1, y1, wrapped = batches.next()
    assert not wrapped
    assert x1[1, 0] == 225 and (y1 == x1 + 1).all()
    x2, _, _ = batches.next()
    assert (x2[:, 0] == x1[:, -1] + 1).all()  # each row continues where it stopped
    for _ in range(batches.windows_per_epoch - 2):
        batches.next()
    _, _, wrapped = batches.next()
    assert wrapped
    assert int(x1.max()) < 900  # never reads validation tokens


def test_too_short_corpus():
    with pytest.raises(CharrnnError, match="too short"):
        StreamBatches(np.arange(100), batch_size=8, seq_len=32)


def test_validation_covers_every_target_once():
    tokens = np.arange(1000)
    targets = np.concatenate([y.reshape(-1).numpy() for _, y in validation_windows(tokens, 900, 1000, 4, 7)])
    assert sorted(targets.tolist()) == list(range(901, 1000))


def test_bucketed_batches_cover_an_epoch_with_little_padding_and_resume_exactly():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(1, 60) for _ in range(1000)]
    batches = BucketedBatches(lengths, 10, seed=3)
    assert batches.batches_per_epoch == 100
    epoch = [batches.next() for _ in range(100)]
    flat = [i for batch in epoch for i in batch]
    assert len(flat) == len(set(flat)) == 1000  # every example once
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch) / 100
    assert spread < 5  # sorted within windows: a batch pads little (random batches: about 45)
    state = batches.state()
    after = [batches.next() for _ in range(30)]  # into the next epoch, in a new order
    assert after[:10] != epoch[:10]
    again = BucketedBatches(lengths, 10, seed=3)
    again.load_state(state)
    assert [again.next() for _ in range(30)] == after
    assert BucketedBatches(lengths, 10, seed=4).next() != BucketedBatches(lengths, 10, seed=3).next()
    with pytest.raises(CharrnnError, match="fewer than one batch"):
        BucketedBatches([3, 4], 10, seed=0)


def test_every_example_is_trained_on_even_when_the_data_is_smaller_than_a_window():
    # 100 examples in batches of 64: one batch an epoch, and 36 set aside each epoch. They must be
    # a random 36, not the longest: taken after sorting by length, the longest never came.
    lengths = list(range(1, 101))
    batches = BucketedBatches(lengths, 64, seed=0)
    drawn = set()
    for _ in range(20):
        drawn.update(batches.next())
    assert drawn == set(range(100))


def test_pad_batch():
    padded, lengths = pad_batch([[5, 6, 7], [8]], pad_id=1)
    assert padded.tolist() == [[5, 6, 7], [8, 1, 1]] and lengths.tolist() == [3, 1]
