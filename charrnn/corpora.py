"""The public corpora charrnn knows: the manifest of names, URLs and checksums, where the files are
found on disk, and their verified download (derived from what the URL serves, stored atomically)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

from . import __version__
from .errors import CharrnnError, UsageError

REPO_ROOT = Path(__file__).resolve().parent.parent
# Package data beside this module, so that an installed wheel knows the corpora too.
MANIFEST_PATH = Path(__file__).resolve().parent / "corpora.json"
CHUNK = 256 * 1024  # read and hash in pieces of this size: memory stays flat for any download
ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, KeyError, EOFError, zlib.error, gzip.BadGzipFile)


@dataclass(frozen=True)
class CorpusFile:
    """One file of a corpus, and how it is made from what the corpus URL serves."""

    name: str
    sha256: str  # of the file as stored
    member: str | None = None  # its path inside the archive
    transcode_from: str | None = None  # the original's encoding; the file is stored as UTF-8
    keep_columns: int | None = None  # keep only the first N tab-separated columns
    gzip_output: bool = False
    # Of the uncompressed content: gzip output differs between zlib versions, so a fresh download
    # of a .gz file is verified by what it holds, not by its bytes.
    content_sha256: str | None = None


@dataclass
class CorpusEntry:
    """A corpus from the manifest; local_path is where it was found (None: not on this machine)."""

    name: str
    description: str
    licence: str
    attribution: str
    files: list[str]
    url: str | None = None
    archive: str | None = None  # None (served as is), "zip" or "tar.gz"
    local_path: Path | None = None  # the file, or for a multi-file corpus the folder holding all
    file_specs: list[CorpusFile] = field(default_factory=list, repr=False)


def search_dirs(extra: Path | None = None) -> list[Path]:
    """Existing folders where corpora are looked for, in order: extra, $CHARRNN_CORPORA
    (os.pathsep-separated), ./corpora, ../shared/corpora, then the same two beside the repository."""
    candidates = [Path(extra)] if extra is not None else []
    candidates += [Path(p) for p in os.environ.get("CHARRNN_CORPORA", "").split(os.pathsep) if p]
    for base in (Path.cwd(), REPO_ROOT):
        candidates += [base / "corpora", base / ".." / "shared" / "corpora"]
    dirs: list[Path] = []
    for path in candidates:
        path = path.expanduser().resolve()
        if path.is_dir() and path not in dirs:
            dirs.append(path)
    return dirs


def load_manifest(manifest_path: Path | None = None) -> list[CorpusEntry]:
    """The corpora in the manifest (MANIFEST_PATH unless given), without looking for them on disk."""
    path = Path(manifest_path or MANIFEST_PATH)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CharrnnError(f"cannot read the corpus manifest {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CharrnnError(f"the corpus manifest {path} is not valid JSON: {exc}") from None
    entries = []
    for corpus in data["corpora"]:
        specs = [CorpusFile(**f) for f in corpus["files"]]
        entries.append(CorpusEntry(
            name=corpus["name"], description=corpus["description"], licence=corpus["licence"],
            attribution=corpus["attribution"], files=[s.name for s in specs], url=corpus.get("url"),
            archive=corpus.get("archive"), file_specs=specs,
        ))
    return entries


def list_corpora(*, extra: Path | None = None, manifest_path: Path | None = None) -> list[CorpusEntry]:
    """The corpora in the manifest, each with local_path set where all its files were found."""
    dirs = search_dirs(extra)
    entries = load_manifest(manifest_path)
    for entry in entries:
        for folder in dirs:
            if all((folder / f).is_file() for f in entry.files):
                entry.local_path = folder / entry.files[0] if len(entry.files) == 1 else folder
                break
    return entries


def find_corpus_file(name_or_file: str, *, extra: Path | None = None,
                     manifest_path: Path | None = None) -> Path | None:
    """The path of a corpus file in the search folders: by corpus name ("tinyshakespeare", for
    single-file corpora) or by file name ("rt-polarity.pos"). None when it is not there."""
    if not name_or_file or Path(name_or_file).name != name_or_file:
        return None  # only plain file names: "/etc/x" or "../x" would escape the search folders
    entry = next((e for e in load_manifest(manifest_path) if e.name == name_or_file), None)
    file_name = entry.files[0] if entry is not None and len(entry.files) == 1 else name_or_file
    for folder in search_dirs(extra):
        if (folder / file_name).is_file():
            return folder / file_name
    return None


def data_notes(path: Path) -> dict[str, str]:
    """The licence and attribution of a known corpus file (matched by name), to store in the
    checkpoints of models trained on it: some licences (CC-BY) require the attribution to travel
    with anything derived from the data. Empty for files the manifest does not know."""
    try:
        entries = load_manifest()
    except CharrnnError:
        return {}
    for entry in entries:
        if Path(path).name in entry.files:
            return {"data": f"{entry.name}: {entry.description}", "data licence": entry.licence,
                    "attribution": entry.attribution}
    return {}


def locate_data_file(argument: str, what: str = "corpus") -> Path:
    """The file a command-line argument names: a path, or else a bare name (tinyshakespeare.txt)
    found in the corpus folders. Raises a one-line CharrnnError when it is neither."""
    path = Path(argument)
    if not path.exists():
        found = find_corpus_file(argument)
        if found is None:
            raise CharrnnError(f"{what} {argument} does not exist (nor in the corpus folders; see `charrnn corpus list`)")
        path = found
    if path.is_dir():
        raise CharrnnError(f"{what} {argument} is a directory; give a file")
    return path


def recorded_data_file(path: str) -> str:
    """A data file that a checkpoint recorded by its absolute path: that path while it exists,
    else its bare file name, which locate_data_file then finds in the corpus folders (so a
    checkpoint trained on another machine, such as a bundled one, still finds its corpus)."""
    return path if Path(path).exists() else Path(path).name


def download_corpus(name: str, *, dest: Path, url: str | None = None, timeout: float = 60,
                    manifest_path: Path | None = None) -> Path:
    """Download corpus `name` into `dest`, derive its files from what the URL serves, verify their
    sha256 and only then move them into place. Returns the file (or `dest` for a multi-file corpus).

    url overrides the manifest's (a mirror; http, https or file). Files already in dest with the right
    checksum are not downloaded again. On any failure nothing is left in dest and existing files are
    untouched.
    """
    entries = {e.name: e for e in load_manifest(manifest_path)}
    if name not in entries:
        raise UsageError(f"unknown corpus {name!r}; known corpora: {', '.join(entries)}")
    entry = entries[name]
    source = url or entry.url
    if source is None:
        raise CharrnnError(f"corpus {name} has no public download URL; put {' and '.join(entry.files)} in "
                           "./corpora or in a folder named by $CHARRNN_CORPORA, or give a copy's URL with --url")
    try:
        scheme = urllib.parse.urlsplit(source).scheme
    except ValueError:
        scheme = None
    if scheme not in ("http", "https", "file"):
        raise UsageError(f"cannot download from {source!r}: give an http://, https:// or file:// URL")

    dest = Path(dest)
    targets = [dest / spec.name for spec in entry.file_specs]
    result = targets[0] if len(targets) == 1 else dest
    if all(_is_valid(target, spec) for target, spec in zip(targets, entry.file_specs)):
        return result
    made = [] if dest.is_dir() else [d for d in (dest, *dest.parents) if not d.exists()]  # innermost first
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CharrnnError(f"cannot create the folder {dest}: {exc.strerror or exc}") from None

    temps: list[Path] = []  # everything here is removed at the end, so a failure leaves nothing
    done = False
    try:
        download, download_sha = _fetch(source, dest, temps, timeout)
        # Derive and verify every file before moving any, so a corpus is never half replaced.
        staged = [_derive(download, download_sha, entry.archive, spec, source, dest, temps)
                  for spec in entry.file_specs]
        for path, target in zip(staged, targets):
            os.chmod(path, 0o644)  # mkstemp makes 0600 files; corpora are data to share
            os.replace(path, target)
        done = True
    except OSError as exc:  # making the temporary files or moving them into place
        raise CharrnnError(f"cannot write in {dest}: {exc.strerror or exc}; nothing was written") from None
    finally:
        for path in temps:
            path.unlink(missing_ok=True)
        if not done:  # nor the folders made for it: a failed download leaves no trace
            for folder in made:
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    break
    return result


def _temp(dest: Path, temps: list[Path]) -> Path:
    # In dest itself, so that os.replace is a rename on one file system (atomic).
    fd, name = tempfile.mkstemp(dir=dest, prefix=".charrnn-", suffix=".part")
    os.close(fd)
    temps.append(Path(name))
    return Path(name)


def _fetch(url: str, dest: Path, temps: list[Path], timeout: float) -> tuple[Path, str]:
    """Stream url to a temporary file in dest; returns it and the sha256 of its bytes."""
    path = _temp(dest, temps)
    digest = hashlib.sha256()
    show = sys.stderr.isatty()
    request = urllib.request.Request(url, headers={"User-Agent": f"charrnn/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(path, "wb") as out:
            total = response.headers.get("Content-Length")
            done = 0
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if show:
                    of = f" / {int(total):,}" if total and total.isdigit() else ""
                    print(f"\rdownloading {url}: {done:,}{of} bytes", end="", file=sys.stderr, flush=True)
    except urllib.error.HTTPError as exc:
        raise _network_error(url, f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise _network_error(url, getattr(reason, "strerror", None) or str(reason)) from None
    except (OSError, HTTPException, ValueError) as exc:  # timeouts, resets, short reads, bad URLs
        raise _network_error(url, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__) from None
    finally:
        if show:
            print(file=sys.stderr)
    return path, digest.hexdigest()


def _network_error(url: str, reason: str) -> CharrnnError:
    return CharrnnError(f"cannot download {url}: {reason}; a mirror can be given with --url")


def _derive(download: Path, download_sha: str, archive: str | None, spec: CorpusFile, url: str,
            dest: Path, temps: list[Path]) -> Path:
    """Make spec's file from the downloaded bytes in a temporary file, and verify it."""
    if archive is None and not (spec.transcode_from or spec.keep_columns or spec.gzip_output):
        _check(spec.name, url, expected=spec.sha256, actual=download_sha)
        return download  # served as is: its hash was taken while streaming
    path = _temp(dest, temps)
    digest = hashlib.sha256()
    try:
        with _open_source(download, archive, spec.member) as src, open(path, "wb") as raw:
            # filename="" and mtime=0 keep the temporary name and the time out of the gzip header
            out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if spec.gzip_output else raw
            with out:
                for piece in _transform(src, spec):
                    digest.update(piece)
                    out.write(piece)
    except ARCHIVE_ERRORS as exc:
        raise CharrnnError(f"the download from {url} is not a valid {archive} holding {spec.member} "
                           f"({exc}); nothing was written") from None
    except UnicodeDecodeError as exc:
        raise CharrnnError(f"{spec.member or url} is not valid {spec.transcode_from or 'UTF-8'} "
                           f"(byte {exc.start}); nothing was written") from None
    except OSError as exc:
        raise CharrnnError(f"cannot write in {dest}: {exc.strerror or exc}") from None
    # A gzip file is verified by its content; any other file's content is the file.
    _check(spec.name, url, expected=spec.content_sha256 or spec.sha256, actual=digest.hexdigest())
    return path


@contextmanager
def _open_source(download: Path, archive: str | None, member: str | None) -> Iterator[BinaryIO]:
    """The bytes a file is made from: the download itself, or one member of it."""
    if archive is None:
        with open(download, "rb") as f:
            yield f
    elif archive == "zip":
        with zipfile.ZipFile(download) as z, z.open(member) as f:
            yield f
    elif archive == "tar.gz":
        with tarfile.open(download, "r:gz") as tar:
            f = tar.extractfile(member)  # read in place: nothing is extracted to disk by its name
            if f is None:
                raise KeyError(f"{member} is not a regular file")
            with f:
                yield f
    else:
        raise CharrnnError(f"the corpus manifest names an unknown archive type {archive!r}")


def _transform(src: BinaryIO, spec: CorpusFile) -> Iterator[bytes]:
    """The file's content in pieces: the source as is, or re-encoded to UTF-8 and cut to columns."""
    if not (spec.transcode_from or spec.keep_columns):
        yield from iter(lambda: src.read(CHUNK), b"")
        return
    # newline="" keeps line endings as they are: only the encoding and the columns change.
    for line in io.TextIOWrapper(src, encoding=spec.transcode_from or "utf-8", newline=""):
        if spec.keep_columns:
            body = line.rstrip("\r\n")
            line = "\t".join(body.split("\t")[: spec.keep_columns]) + line[len(body):]
        yield line.encode("utf-8")


def _check(name: str, url: str, *, expected: str, actual: str) -> None:
    if actual != expected:
        raise CharrnnError(f"checksum mismatch for {name} from {url}: expected sha256 {expected[:12]}, "
                           f"got {actual[:12]}; nothing was written")


def _sha256(f: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: f.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _is_valid(path: Path, spec: CorpusFile) -> bool:
    """Whether path already holds spec's file: by its bytes, or for gzip output by its content."""
    try:
        with open(path, "rb") as f:
            if _sha256(f) == spec.sha256:
                return True
        if spec.gzip_output and spec.content_sha256:
            with gzip.open(path, "rb") as f:
                return _sha256(f) == spec.content_sha256
    except (OSError, EOFError, zlib.error):  # missing, unreadable or not gzip: download it afresh
        pass
    return False
