"""`charrnn embed` and charrnn.embedding with the bundled classifier and translator: one vector a
line in input order whatever the batching, empty lines kept in place, the JSON and .npy forms, the
nearest lines of a file by cosine similarity, and one-line errors for what cannot be embedded."""

import json

import numpy as np
import pytest

from charrnn.embedding import load_embedder, nearest
from test_cli import assert_one_line_error, run

TEXTS = ["I loved this film.", "", "a dull, tedious, overlong mess of a movie", "I loved this movie.",
         "Where is the station?", "ok"]


@pytest.mark.parametrize("name, dimension", [("sentiment", 256), ("spa-eng", 256)])
def test_one_vector_a_text_in_input_order_whatever_the_batches(name, dimension):
    embedder = load_embedder(name, device="cpu", batch_size=2)  # batches sorted by length, then put back
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), dimension) and vectors.dtype == np.float32
    assert np.isnan(vectors[1]).all() and not np.isnan(np.delete(vectors, 1, axis=0)).any()
    for text, vector in zip(TEXTS, vectors):
        if text:
            np.testing.assert_allclose(embedder.embed([text])[0], vector, atol=1e-5)
    # A paraphrase is nearer than an unrelated sentence.
    found = nearest(vectors[:1], vectors, TEXTS, k=2)[0]
    assert [n.line for n in found] == [1, 4] and found[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_json_npy_and_nearest_from_the_command_line(tmp_path):
    (tmp_path / "corpus.txt").write_text("The cat sleeps.\nWhere is the train station?\n\nI like this book.\n")
    done = run("embed", "-c", "spa-eng", "--json", input_bytes="Where is the station?\n\nI like cats.\n".encode(),
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    rows = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["text"] for r in rows] == ["Where is the station?", "", "I like cats."]
    assert len(rows[0]["vector"]) == 256 and rows[1]["vector"] is None

    done = run("embed", "-c", "spa-eng", "a", "b c", "--npy", "v.npy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"" and np.load(tmp_path / "v.npy").shape == (2, 256)

    done = run("embed", "-c", "spa-eng", "--nearest", "corpus.txt", "-k", "2", "Where is the station?", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    first, second = done.stdout.decode().splitlines()[:2]
    assert first.split("\t")[1:] == ["2", "Where is the train station?"] and float(first.split("\t")[0]) > 0.8
    assert second.split("\t")[1] != "3"  # the empty line is never a neighbour


@pytest.mark.parametrize("args, fragment", [
    (["-c", "shakespeare", "x"], "is a language model, which has no encoder"),
    (["-c", "sentiment", "x", "--npy", "v.npy", "--nearest", "f.txt"], "--npy and --nearest do not go together"),
    (["-c", "sentiment", "x", "--nearest", "missing.txt"], "cannot read missing.txt"),
    (["-c", "sentiment", "x", "--nearest", "blank.txt"], "has no non-empty lines"),
    (["-c", "sentiment", "x", "--nearest", "blank.txt", "-k", "0"], "-k must be at least 1"),
    (["-c", "sentiment", "x", "--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_what_cannot_be_embedded_is_one_line(args, fragment, tmp_path):
    (tmp_path / "blank.txt").write_text("\n \n")
    done = run("embed", *args, cwd=tmp_path)
    assert_one_line_error(done, 2 if "missing" not in fragment and "non-empty" not in fragment else 1, fragment)
