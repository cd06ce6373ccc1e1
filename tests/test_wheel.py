"""The wheel works where most people install it: built from the source, installed (not editable)
in a new virtual environment, and run from an empty folder, with the bundled models and the
corpus manifest it carries.

The new environment gets charrnn from the wheel alone (pip --no-index: no network); its
dependencies (torch and the rest) are borrowed from the environment running the tests through a
.pth file, because installing torch a second time would cost minutes and a GB of disk per run.
Lines of a .pth file only extend sys.path, so the outer environment's own (editable) charrnn is
never imported: the test checks that the charrnn it runs is the wheel's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the new venv's bin folder, an empty working folder, the environment to run in)."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (the dev extra)")
    root = tmp_path_factory.mktemp("wheel")
    # Build from a copy, so the build leaves nothing (build/, *.egg-info) in the checkout.
    source = root / "source"
    source.mkdir()
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "charrnn", source / "charrnn", ignore=shutil.ignore_patterns("__pycache__"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                  "-w", str(root / "dist"), str(source)])
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (root / "dist").glob("charrnn-*.whl")

    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    added = _run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", str(wheel)])
    assert added.returncode == 0, added.stderr[-2000:]
    site_packages = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site_packages / "_borrowed_dependencies.pth").write_text("\n".join(sorted(outer)) + "\n")

    work = root / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CHARRNN_CORPORA", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    return {"wheel": wheel, "bin": bin_dir, "python": python, "site": site_packages, "cwd": work, "env": env}


def charrnn(installed, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return _run([str(installed["bin"] / "charrnn"), *args], cwd=installed["cwd"], env=installed["env"], input=stdin)


def test_the_wheel_carries_the_models_and_the_manifest(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for member in ("charrnn/models/shakespeare.pt", "charrnn/models/spa-eng.pt", "charrnn/models/sentiment.pt",
                   "charrnn/models/airline.pt", "charrnn/models/sentences.pt", "charrnn/models/README.md",
                   "charrnn/corpora.json", "charrnn/py.typed"):
        assert member in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "checkpoints/"))]


def test_the_installed_package_is_the_wheels(installed):
    proc = _run([str(installed["python"]), "-c", "import charrnn; print(charrnn.__file__)"],
                cwd=installed["cwd"], env=installed["env"])
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(installed["site"])


def test_sample_from_the_bundled_model(installed):
    proc = charrnn(installed, "sample", "-n", "80", "--seed", "1", "--prime", "ROMEO:")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ROMEO:") and len(proc.stdout) == len("ROMEO:") + 81


def test_translate_with_the_bundled_model(installed):
    proc = charrnn(installed, "translate", "where is the train station")
    assert proc.returncode == 0, proc.stderr
    assert "estación" in proc.stdout


def test_classify_with_the_bundled_model(installed):
    proc = charrnn(installed, "classify", "--json", stdin="A gorgeous, witty, seductive movie!\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["label"] == "pos"


def test_corpus_list_reads_the_packaged_manifest(installed):
    proc = charrnn(installed, "corpus", "list")
    assert proc.returncode == 0, proc.stderr
    names = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    assert {"tinyshakespeare", "spa-eng", "rt-polarity"} <= set(names)


def test_python_loads_a_bundled_model_by_name(installed):
    code = ("import charrnn; model, vocab, saved = charrnn.load_language_model('shakespeare', device='cpu'); "
            "print(sorted(charrnn.bundled_models()), saved.task)")
    proc = _run([str(installed["python"]), "-c", code], cwd=installed["cwd"], env=installed["env"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["['airline',", "'sentences',", "'sentiment',", "'shakespeare',", "'spa-eng']", "language_model"]


def test_forecast_with_the_bundled_model_without_its_corpus(installed):
    # The checkpoint carries the end of its series: the next 12 months need no corpus.
    proc = charrnn(installed, "forecast", "predict")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "date,forecast,lower,upper" and lines[1].startswith("1961-01-01,") and len(lines) == 13
