"""Corpus manifest, search path and verified download, against tiny originals made here: file://
URLs and an HTTP server on 127.0.0.1, never the internet."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from charrnn import corpora
from charrnn.corpora import download_corpus, find_corpus_file, list_corpora, search_dirs
from charrnn.errors import CharrnnError, UsageError

SHARED = corpora.REPO_ROOT.parent / "shared" / "corpora"
PLAIN = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
PAIRS = "Go.\tVe.\tCC-BY 2.0 (France) #1\nWho?\t\u00bfQui\u00e9n?\tCC-BY 2.0 (France) #2\n"
PAIRS_KEPT = "Go.\tVe.\nWho?\t\u00bfQui\u00e9n?\n".encode()
POS_CP1252 = b"caf\xe9 \x85 good\n"  # 0x85 is the ellipsis in cp1252, a control code in latin-1
NEG_CP1252 = b"\x93dull\x94 \x96 bad\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def originals(tmp_path) -> Path:
    """What the public URLs would serve: a text file, a zip and a tar.gz."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "plain.txt").write_bytes(PLAIN)
    (src / "other.txt").write_bytes(b"not the corpus\n")
    with zipfile.ZipFile(src / "pairs.zip", "w") as z:
        z.writestr("_about.txt", "about")
        z.writestr("spa.txt", PAIRS)
    with tarfile.open(src / "polarity.tar.gz", "w:gz") as tar:
        for name, data in [("pos", POS_CP1252), ("neg", NEG_CP1252)]:
            info = tarfile.TarInfo(f"rt-polaritydata/rt-polarity.{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return src


@pytest.fixture
def manifest(tmp_path, originals) -> Path:
    """A manifest for the originals, with checksums computed here."""
    gz_bytes = gzip.compress(PAIRS_KEPT, mtime=0)
    corpora_list = [
        {"name": "plain", "url": (originals / "plain.txt").as_uri(),
         "files": [{"name": "plain.txt", "sha256": sha(PLAIN)}]},
        {"name": "pairs", "url": (originals / "pairs.zip").as_uri(), "archive": "zip",
         "files": [{"name": "pairs.tsv.gz", "member": "spa.txt", "keep_columns": 2, "gzip_output": True,
                    "sha256": sha(gz_bytes), "content_sha256": sha(PAIRS_KEPT)}]},
        {"name": "polarity", "url": (originals / "polarity.tar.gz").as_uri(), "archive": "tar.gz",
         "files": [{"name": f"p.{n}", "member": f"rt-polaritydata/rt-polarity.{n}", "transcode_from": "cp1252",
                    "sha256": sha(data.decode("cp1252").encode())}
                   for n, data in [("pos", POS_CP1252), ("neg", NEG_CP1252)]]},
        {"name": "offline", "url": None, "files": [{"name": "offline.csv", "sha256": sha(b"x")}]},
    ]
    for c in corpora_list:
        c.update(description=f"{c['name']} corpus", licence="CC0", attribution="the tests")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"version": 1, "corpora": corpora_list}))
    return path


@pytest.fixture
def server(originals):
    """An HTTP server on 127.0.0.1 serving the originals; yields (base URL, list of request paths)."""
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(originals)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_file_url_download_is_verified(tmp_path, manifest):
    dest = tmp_path / "dest"
    path = download_corpus("plain", dest=dest, manifest_path=manifest)
    assert path == dest / "plain.txt"
    assert path.read_bytes() == PLAIN
    assert os.listdir(dest) == ["plain.txt"]  # no temporary file left behind


def test_http_download_and_no_second_download(tmp_path, manifest, server):
    base, requests = server
    dest = tmp_path / "dest"
    for _ in range(2):
        path = download_corpus("plain", dest=dest, url=f"{base}/plain.txt", timeout=10, manifest_path=manifest)
        assert path.read_bytes() == PLAIN
    assert requests == ["/plain.txt"]
    # A gzip file written by another compressor is recognised by its content.
    (dest / "pairs.tsv.gz").write_bytes(gzip.compress(PAIRS_KEPT, compresslevel=1, mtime=123))
    download_corpus("pairs", dest=dest, url=f"{base}/pairs.zip", timeout=10, manifest_path=manifest)
    assert requests == ["/plain.txt"]


def test_checksum_mismatch_writes_nothing(tmp_path, manifest, originals):
    dest = tmp_path / "dest"
    wrong = (originals / "other.txt").as_uri()
    with pytest.raises(CharrnnError) as err:
        download_corpus("plain", dest=dest, url=wrong, manifest_path=manifest)
    message = err.value.message
    assert "checksum mismatch" in message and sha(PLAIN)[:12] in message and sha(b"not the corpus\n")[:12] in message
    assert "nothing was written" in message and "\n" not in message
    assert not dest.exists()  # nor the folder it made for the download
    # An existing file (here a stale one, so a download is tried) survives a failed download.
    dest.mkdir()
    (dest / "plain.txt").write_bytes(b"old copy\n")
    with pytest.raises(CharrnnError):
        download_corpus("plain", dest=dest, url=wrong, manifest_path=manifest)
    assert (dest / "plain.txt").read_bytes() == b"old copy\n"
    assert os.listdir(dest) == ["plain.txt"]


def test_network_failure_names_url_and_mirror_option(tmp_path, manifest, server):
    base, _ = server
    dest = tmp_path / "dest"
    for url, reason in [(f"{base}/missing.txt", "HTTP 404"), ((tmp_path / "missing.txt").as_uri(), "No such file")]:
        with pytest.raises(CharrnnError) as err:
            download_corpus("plain", dest=dest, url=url, timeout=10, manifest_path=manifest)
        assert url in err.value.message and reason in err.value.message and "--url" in err.value.message
        assert err.value.exit_code == 1
    assert not dest.exists()  # nothing written, not even the folder


def test_zip_keep_columns_gzip(tmp_path, manifest):
    dest = tmp_path / "dest"
    path = download_corpus("pairs", dest=dest, manifest_path=manifest)
    assert path == dest / "pairs.tsv.gz"
    assert gzip.decompress(path.read_bytes()) == PAIRS_KEPT
    assert path.read_bytes()[4:8] == b"\0\0\0\0"  # mtime 0 in the gzip header
    assert os.listdir(dest) == ["pairs.tsv.gz"]


def test_not_an_archive(tmp_path, manifest, originals):
    dest = tmp_path / "dest"
    with pytest.raises(CharrnnError, match="not a valid zip"):
        download_corpus("pairs", dest=dest, url=(originals / "plain.txt").as_uri(), manifest_path=manifest)
    assert not dest.exists()  # nothing written, not even the folder


def test_tar_gz_cp1252_to_utf8(tmp_path, manifest):
    dest = tmp_path / "dest"
    assert download_corpus("polarity", dest=dest, manifest_path=manifest) == dest
    assert (dest / "p.pos").read_text(encoding="utf-8") == "caf\u00e9 \u2026 good\n"
    assert (dest / "p.neg").read_text(encoding="utf-8") == "\u201cdull\u201d \u2013 bad\n"
    assert sorted(os.listdir(dest)) == ["p.neg", "p.pos"]


def test_unknown_name_is_a_usage_error(tmp_path, manifest):
    with pytest.raises(UsageError) as err:
        download_corpus("nosuch", dest=tmp_path / "dest", manifest_path=manifest)
    assert err.value.exit_code == 2
    assert "nosuch" in err.value.message and "plain, pairs, polarity, offline" in err.value.message
    assert not (tmp_path / "dest").exists()


def test_no_url_says_where_to_put_the_file(tmp_path, manifest):
    with pytest.raises(CharrnnError) as err:
        download_corpus("offline", dest=tmp_path / "dest", manifest_path=manifest)
    assert "offline.csv" in err.value.message and "CHARRNN_CORPORA" in err.value.message
    assert not (tmp_path / "dest").exists()


def test_search_path_and_lookup(tmp_path, manifest, monkeypatch):
    extra, env1, env2, cwd = (tmp_path / n for n in ("extra", "env1", "env2", "cwd"))
    for d in (extra, env1, env2, cwd / "corpora"):
        d.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("CHARRNN_CORPORA", os.pathsep.join([str(env1), str(tmp_path / "absent"), str(env2), str(env1)]))
    dirs = search_dirs(extra)
    assert dirs[:4] == [extra.resolve(), env1.resolve(), env2.resolve(), (cwd / "corpora").resolve()]
    assert len(dirs) == len(set(dirs)) and all(d.is_dir() for d in dirs)

    (env2 / "plain.txt").write_bytes(PLAIN)
    (env1 / "p.pos").write_text("x")
    (env2 / "p.pos").write_text("x")
    (env2 / "p.neg").write_text("x")
    assert find_corpus_file("plain", manifest_path=manifest) == env2.resolve() / "plain.txt"
    assert find_corpus_file("p.pos", manifest_path=manifest) == env1.resolve() / "p.pos"
    assert find_corpus_file("nothing.txt", manifest_path=manifest) is None
    assert find_corpus_file("../env1/p.pos", manifest_path=manifest) is None
    found = {e.name: e.local_path for e in list_corpora(manifest_path=manifest)}
    assert found == {"plain": env2.resolve() / "plain.txt", "pairs": None, "polarity": env2.resolve(), "offline": None}


def file_sha(path: Path, opener=open) -> str:
    digest = hashlib.sha256()
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/corpora on this machine")
def test_real_manifest_matches_shared_corpora():
    entries = corpora.load_manifest()
    assert [e.name for e in entries] == ["tinyshakespeare", "spa-eng", "rt-polarity", "btc-usd-daily", "airline-passengers"]
    for entry in entries:
        assert entry.licence and entry.attribution and entry.description
        for spec in entry.file_specs:
            assert file_sha(SHARED / spec.name) == spec.sha256, spec.name
            if spec.content_sha256:
                assert file_sha(SHARED / spec.name, gzip.open) == spec.content_sha256, spec.name


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CHARRNN_CORPORA"}
    env["PYTHONPATH"] = os.pathsep.join([str(corpora.REPO_ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "charrnn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_list(tmp_path):
    result = run_cli("corpus", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert "tinyshakespeare" in names


def test_cli_unknown_corpus_is_one_line(tmp_path):
    result = run_cli("corpus", "download", "nosuch", "--dest", str(tmp_path / "d"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("charrnn: error:") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "d").exists()


def test_cli_download_json(tmp_path):
    source = SHARED / "tinyshakespeare.txt"
    if not source.is_file():
        pytest.skip("no ../shared/corpora on this machine")
    result = run_cli("corpus", "download", "tinyshakespeare", "--dest", str(tmp_path / "d"), "--url", source.as_uri(),
                     "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    downloaded = json.loads(result.stdout)
    assert downloaded["name"] == "tinyshakespeare" and downloaded["licence"] == "public domain"
    assert Path(downloaded["path"]).read_bytes() == source.read_bytes()
