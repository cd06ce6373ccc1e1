"""`charrnn embed`: one vector a line from a model's encoder (see embedding.py), as text, JSON
lines or a binary .npy file, or the lines of a file nearest to each text by cosine similarity."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli_support import input_lines
from .errors import CharrnnError, UsageError


def embed(
    texts: Annotated[Optional[list[str]], typer.Argument(metavar="TEXT", help="Texts to embed \\[default: lines from stdin].")] = None,
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A model with an encoder: a classifier, translator or autoencoder checkpoint, a run folder, or a bundled model's name (sentiment, spa-eng, sentences).")] = ...,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: text and vector (null for an empty line); with --nearest: query and its nearest lines.")] = False,
    npy: Annotated[Optional[Path], typer.Option("--npy", help="Write the vectors to this .npy file (rows in input order; NaN rows for empty lines); - for stdout.")] = None,
    nearest: Annotated[Optional[Path], typer.Option("--nearest", help="Find the lines of this file most similar (cosine) to each text.")] = None,
    k: Annotated[int, typer.Option("-k", help="With --nearest: how many lines to show for each text.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Texts encoded together.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    encoding: Annotated[str, typer.Option(help="Text encoding of stdin and of the --nearest file.")] = "utf-8",
):
    """Turn texts (arguments, or stdin lines) into vectors with a model's encoder: one line of
    numbers a text (an empty line for an empty text), or --json, or --npy; with --nearest FILE,
    the FILE lines most similar to each text instead: similarity<TAB>line number<TAB>line, k lines
    a text, a blank line after each."""
    import numpy as np

    from .embedding import load_embedder

    if nearest is not None and npy is not None:
        raise UsageError("--npy and --nearest do not go together: --nearest prints lines, not vectors")
    if npy is not None and as_json:
        raise UsageError("--npy and --json do not go together: choose one output")
    chunks = input_lines(texts, "texts to embed", encoding)
    embedder = load_embedder(checkpoint, device=device, batch_size=batch_size)
    if nearest is not None:
        _print_nearest(embedder, chunks, nearest, k=k, encoding=encoding, as_json=as_json)
    elif npy is not None:
        _write_npy(embedder, chunks, npy)
    else:
        for lines in chunks:
            for text, vector in zip(lines, embedder.embed(lines)):
                empty = bool(np.isnan(vector).all())  # an empty line's row
                if as_json:
                    value = None if empty else [round(float(x), 6) for x in vector]
                    sys.stdout.write(json.dumps({"text": text, "vector": value}, ensure_ascii=False) + "\n")
                else:
                    sys.stdout.write(("" if empty else " ".join(f"{x:.6g}" for x in vector)) + "\n")
            sys.stdout.flush()


def _write_npy(embedder, chunks, destination: Path) -> None:
    import numpy as np

    from .output_files import check_output_file

    if str(destination) != "-":
        check_output_file(destination, "--npy file")
    parts = [embedder.embed(lines) for lines in chunks]
    vectors = np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), dtype=np.float32)
    if str(destination) == "-":
        np.save(sys.stdout.buffer, vectors)
        sys.stdout.flush()
        return
    try:
        np.save(destination, vectors, allow_pickle=False)
    except OSError as exc:
        raise CharrnnError(f"cannot write {destination}: {exc.strerror or exc}") from None
    print(f"{destination}: {vectors.shape[0]:,} vectors of {vectors.shape[1]}", file=sys.stderr)


def _print_nearest(embedder, chunks, path: Path, *, k: int, encoding: str, as_json: bool) -> None:
    from .embedding import nearest
    from .text_encoding import check_encoding, not_in_encoding

    check_encoding(encoding)
    if k < 1:
        raise UsageError(f"-k must be at least 1, not {k}")
    try:
        lines = path.read_bytes().decode(encoding).splitlines()
    except OSError as exc:
        raise CharrnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeError as exc:
        raise not_in_encoding(f"--nearest file {path}", encoding, exc) from None
    if not any(line.strip() for line in lines):
        raise CharrnnError(f"--nearest file {path} has no non-empty lines to search")
    corpus = embedder.embed(lines)
    for queries in chunks:
        for query, found in zip(queries, nearest(embedder.embed(queries), corpus, lines, k)):
            if as_json:
                neighbours = [{"line": n.line, "text": n.text, "similarity": round(n.similarity, 4)} for n in found]
                sys.stdout.write(json.dumps({"query": query, "nearest": neighbours}, ensure_ascii=False) + "\n")
            else:
                sys.stdout.write("".join(f"{n.similarity:.4f}\t{n.line}\t{n.text}\n" for n in found) + "\n")
        sys.stdout.flush()
