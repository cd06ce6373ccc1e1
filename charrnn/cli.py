"""The `charrnn` command line: thin Typer commands that parse options and call one library
function each. torch is imported inside the commands, so `charrnn --help` starts fast."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .autoencode.cli import autoencode_app
from .classify.cli import classify_app
from .cli_support import CONTEXT
from .embed_command import embed
from .errors import CharrnnError, UsageError
from .forecast.cli import forecast_app
from .language.cli import sample, train
from .run_commands import plot, runs
from .translate.cli import translate_app

app = typer.Typer(
    name="charrnn",
    help="Train and use small sequence models (RNN, LSTM, GRU, WaveNet) on your own text and series.",
    context_settings=CONTEXT,
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=True,  # --install-completion and --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(help="List and download the public corpora charrnn knows.", context_settings=CONTEXT, no_args_is_help=True)
# Each task's commands live in its folder: the language model's at the top level (charrnn train,
# charrnn sample), the others as groups.
app.command(context_settings=CONTEXT)(train)
app.command(context_settings=CONTEXT)(sample)
app.command(context_settings=CONTEXT)(runs)
app.command(context_settings=CONTEXT)(plot)
app.command(context_settings=CONTEXT)(embed)
app.add_typer(corpus_app, name="corpus")
app.add_typer(translate_app, name="translate")
app.add_typer(classify_app, name="classify")
app.add_typer(forecast_app, name="forecast")
app.add_typer(autoencode_app, name="autoencode")


def _version(value: bool):
    if value:
        print(f"charrnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
):
    """Train and use small sequence models (RNN, LSTM, GRU, WaveNet) on your own text and series."""


# -- info and export ---------------------------------------------------------------------------


@app.command(context_settings=CONTEXT)
def info(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint file or run folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="The same as one JSON object.")] = False,
):
    """Show a checkpoint's model, vocabulary, training time and best validation figures."""
    from .checkpoint import checkpoint_file, load_checkpoint, rebuilding_from
    from .console import checkpoint_summary, print_checkpoint_info

    path = checkpoint_file(checkpoint)
    loaded = load_checkpoint(path)
    summary = checkpoint_summary(str(path), loaded)
    with rebuilding_from(path):  # a field of a printable type but the wrong kind (a count that is text)
        if as_json:
            print(json.dumps(summary, ensure_ascii=False))
        else:
            print_checkpoint_info(summary)


@app.command(context_settings=CONTEXT)
def export(
    source: Annotated[Path, typer.Argument(help="Checkpoint to export (for example checkpoints/run/best.pt).")],
    destination: Annotated[Path, typer.Argument(help="Where to write the inference-only checkpoint.")],
    half: Annotated[bool, typer.Option("--half", help="Store weights in fp16 (half the size).")] = False,
    note: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE notes to store (shown by charrnn info), e.g. licence.")] = None,
):
    """Write an inference-only copy of a checkpoint: weights and vocabulary, no optimiser state."""
    from .checkpoint import load_checkpoint, rebuilding_from, save_checkpoint
    from .output_files import check_output_file

    check_output_file(destination, "export target")
    notes = {}
    for item in note or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--note takes KEY=VALUE, not {item!r}")
        notes[key] = value
    loaded = load_checkpoint(source)
    with rebuilding_from(source):
        exported = loaded.for_inference(half=half)
        if notes:
            exported.metadata = {**exported.metadata, "notes": {**(exported.metadata.get("notes") or {}), **notes}}
    save_checkpoint(exported, destination)
    size = destination.stat().st_size
    print(f"{destination} ({size / 1e6:.1f} MB)", file=sys.stderr)


# -- corpora -----------------------------------------------------------------------------------


@corpus_app.command("list", context_settings=CONTEXT)
def corpus_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a corpus: name, description, licence, attribution, files, url, path.")] = False,
):
    """List the known corpora, their licences and whether they are available here."""
    from .corpora import list_corpora

    for entry in list_corpora():
        path = str(entry.local_path) if entry.local_path else None
        if as_json:
            print(json.dumps({"name": entry.name, "description": entry.description, "licence": entry.licence,
                              "attribution": entry.attribution, "files": entry.files, "url": entry.url, "path": path},
                             ensure_ascii=False))
        else:
            print(f"{entry.name}\t{entry.description}\t{entry.licence}\t{f'found at {path}' if path else 'not downloaded'}")


@corpus_app.command("download", context_settings=CONTEXT)
def corpus_download(
    name: Annotated[str, typer.Argument(help="Corpus name from `charrnn corpus list`.")],
    dest: Annotated[Path, typer.Option(help="Folder to download into.")] = Path("corpora"),
    url: Annotated[Optional[str], typer.Option(help="Download from this URL (a mirror) instead of the manifest's; the checksum is still verified.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: name, path, licence, attribution.")] = False,
):
    """Download a public corpus, verify its sha256 checksum, and store it atomically."""
    from .corpora import download_corpus, list_corpora

    path = download_corpus(name, dest=dest, url=url)
    entry = next(e for e in list_corpora() if e.name == name)
    # Some licences (CC-BY) require the attribution to travel with anything made from the data.
    print(f"{name}: {entry.licence}; attribution: {entry.attribution}", file=sys.stderr)
    if as_json:
        print(json.dumps({"name": name, "path": str(path), "licence": entry.licence, "attribution": entry.attribution},
                         ensure_ascii=False))
    else:
        print(path)


# -- entry point -------------------------------------------------------------------------------


def _silence_stdout() -> None:
    """After the reader of a pipe has gone (`| head`), point stdout at /dev/null so the
    interpreter's final flush does not raise a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _error(message: str) -> None:
    # One line, whatever the message quotes: a newline or other control character in a path or
    # an argument is shown escaped ("a\\nb"), as Python writes it in a string.
    shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
    print(f"charrnn: error: {shown}", file=sys.stderr)


class ReaderGone(Exception):
    """stdout's reader has gone (`charrnn sample | head`): not an error, the output is done."""


class ResultStream:
    """sys.stdout as every command writes its results, with the write failures turned into what
    they mean: the reader of a pipe gone (ReaderGone, which the option parser's own broken-pipe
    handling, an exit code of 1, never sees), a full disk or other failure (a one-line error), or
    no stdout at all (`>&-`: an error at the first result, so commands that write none still run)."""

    def __init__(self, stream):
        self._stream = stream

    def _call(self, method: str, *args):
        if self._stream is None:
            raise CharrnnError("stdout is closed: there is nowhere to write the results")
        try:
            return getattr(self._stream, method)(*args)
        except BrokenPipeError:
            raise ReaderGone() from None
        except OSError as exc:
            raise CharrnnError(f"cannot write the results to stdout: {exc.strerror or exc}") from None

    def write(self, text: str) -> int:
        return self._call("write", text)

    def flush(self) -> None:
        if self._stream is not None:
            self._call("flush")

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every user error becomes one line on stderr and an exit code (2 for usage,
    1 for run-time problems), never a traceback."""
    original_stdout = sys.stdout
    try:
        # Building the command inside the try: a Ctrl-C this early is still "interrupted".
        command = typer.main.get_command(app)
        sys.stdout = ResultStream(original_stdout)
        result = command.main(args=argv, prog_name="charrnn", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        # Typer turns a Ctrl-C anywhere in a command into a returned 130, and nothing else does
        # (a training run stopped by Ctrl-C raises errors.Interrupted).
        if code == 130:
            _error("interrupted")
        sys.stdout.flush()  # a full disk shows at the last flush as often as at a write
    except typer.Abort:
        _error("aborted")
        code = 130
    except typer.TyperException as exc:  # bad options and arguments: typer's parser reports them
        # A group given no arguments: the error printed the group's help as it was raised.
        if type(exc).__name__ != "NoArgsIsHelpError":
            _error(exc.format_message())
        code = getattr(exc, "exit_code", 2)
    except CharrnnError as exc:
        if exc.message:  # an Interrupted run whose summary said it all has none
            _error(exc.message)
        code = exc.exit_code
    except (ReaderGone, BrokenPipeError):
        # Exit 0: the reader took what it wanted, as `head` does (README, "Errors and exit codes").
        _silence_stdout()
        code = 0
    except KeyboardInterrupt:
        _error("interrupted")
        code = 130
    except MemoryError:
        _error("out of memory; try a smaller --batch-size or --hidden-size")
        code = 1
    except OSError as exc:
        # The last line of defence: a file or folder that cannot be read or written, which no
        # earlier check caught (permissions changed during a run, a disk filling up).
        where = f" {exc.filename}" if exc.filename else ""
        _error(f"cannot use{where}: {exc.strerror or exc}")
        code = 1
    finally:
        sys.stdout = original_stdout
    if code:
        sys.exit(code)
    return 0


if __name__ == "__main__":
    main()
