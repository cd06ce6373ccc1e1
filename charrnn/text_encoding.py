"""The one check of a user's --encoding, and the one message for text that is not in it. Every
reader of text files and stdin (corpora, pair files, labelled data, lines to translate or
classify) goes through these, so a bad name or undecodable bytes read the same everywhere."""

from __future__ import annotations

import codecs

from .errors import CharrnnError, UsageError

SUGGESTED = "utf-8, latin-1 or cp1252"


def check_encoding(encoding: str) -> str:
    """The codec's canonical name, or a usage error: for a name Python does not know, and for
    codecs that are not text encodings (hex, base64, zlib, rot13: bytes-to-bytes or str-to-str
    transforms that str.decode refuses too, so reading with them fails later with a TypeError)."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"unknown --encoding {encoding!r}; try {SUGGESTED}") from None
    # CodecInfo's flag for the transforms above; str.encode and bytes.decode check the same flag.
    if not getattr(info, "_is_text_encoding", True):
        raise UsageError(f"--encoding {encoding!r} is not a text encoding; try {SUGGESTED}")
    return info.name


def not_in_encoding(what: str, encoding: str, exc: UnicodeError, *, position: str = "", fix: str = "") -> CharrnnError:
    """The error for text that does not decode: what (such as "corpus big.txt") is not valid
    encoding, with the reason, where (position), and how to fix it (default: pass --encoding).
    UnicodeError covers a decoder's own failures (utf-16 without a byte-order mark) as well as
    UnicodeDecodeError's bad bytes."""
    reason = getattr(exc, "reason", None) or str(exc)
    where = f", {position}" if position else ""
    return CharrnnError(f"{what} is not valid {encoding} text ({reason}{where}); "
                        f"{fix or f'pass --encoding with its encoding, such as {SUGGESTED}'}")
