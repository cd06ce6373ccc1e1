"""What the command groups share: help options, a group with a default command, and stdin read
in chunks. No torch here: `charrnn --help` must start fast."""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Iterator, Sequence

from typer.core import TyperGroup

from .errors import CharrnnError, Interrupted, UsageError
from .text_encoding import check_encoding, not_in_encoding

CONTEXT = {"help_option_names": ["-h", "--help"]}
DEFAULT_COMMAND = "text"
STDIN_CHUNK = 256  # stdin lines handled per batch: output flows while input is still coming


class DefaultCommandGroup(TyperGroup):
    """A group whose first argument, when it is not a subcommand, starts the default command
    (named DEFAULT_COMMAND): `charrnn translate "It is late."` translates, `charrnn translate
    train PAIRS` trains."""

    showing_help = False

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx, formatter):
        """The group's help shows the default command's arguments and options (they are what
        `charrnn translate --help` is asked about) above the other subcommands."""
        self.showing_help = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.showing_help = False

    def get_params(self, ctx):
        params = super().get_params(ctx)
        if not self.showing_help:
            return params  # parsing: the group itself takes only --help
        own_names = {name for param in params for name in param.opts}
        default = self.commands[DEFAULT_COMMAND]
        borrowed = [param for param in default.get_params(ctx) if not own_names & set(param.opts)]
        return [*borrowed, *params]


def input_lines(texts: Sequence[str] | None, what: str, encoding: str = "utf-8") -> Iterator[list[str]]:
    """The lines to work on in chunks: the arguments (one chunk), else stdin's lines, read as bytes
    and decoded with encoding, chunk by chunk. This is where every command's text input is read,
    so text that is not in its encoding is one clear error here, never a failure deep in a
    tokenizer. A terminal on stdin with no arguments is a usage error, not a silent wait."""
    check_encoding(encoding)
    if texts:
        for number, text in enumerate(texts, 1):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # bytes the terminal's encoding could not read (kept as surrogates)
                raise CharrnnError(f"argument {number} is not valid text in this terminal's encoding; "
                                   "put it in a file and pipe it in with --encoding") from None
        return iter([list(texts)])
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(f"give {what} as arguments, or pipe lines into stdin")
    return _stdin_chunks(sys.stdin.buffer, encoding)


def _stdin_chunks(stream, encoding: str) -> Iterator[list[str]]:
    """stdin's lines decoded with one incremental decoder, which keeps what a multi-byte encoding
    left over between reads (a utf-16 newline is two bytes, and a byte-order mark comes once)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    chunk: list[str] = []
    done = 0  # lines decoded so far: the failing line is the next
    partial = ""
    for raw in (*stream, b""):
        try:
            text = decoder.decode(raw, final=not raw)
        except UnicodeError as exc:
            at = f"0x{exc.object[exc.start]:02x}" if isinstance(exc, UnicodeDecodeError) else ""
            raise not_in_encoding(f"stdin line {done + 1}", encoding, exc, position=at) from None
        *lines, partial = (partial + text).split("\n")
        if not raw and partial:
            lines.append(partial)
        for line in lines:
            chunk.append(line.removesuffix("\r"))
            done += 1
            if len(chunk) == STDIN_CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def finish_training(result, *, quiet: bool, command: str, as_json: bool = False) -> None:
    """What every training command does once its run has ended: the summary on stderr (unless
    quiet), the outcome as one JSON object on stdout (with --json), exit code 130 after Ctrl-C,
    and a one-line error if the loss diverged."""
    from .console import print_training_summary, training_outcome
    from .distributed import launch_command, writes_output
    from .train import StopReason

    writer = writes_output()  # under torchrun, rank 0 reports for all ranks
    command = launch_command(command)  # what the resume hint repeats
    if not quiet and writer:
        print_training_summary(result, command)
    if as_json and writer:
        print(json.dumps(training_outcome(result), ensure_ascii=False), flush=True)
    if result.stop_reason is StopReason.INTERRUPTED:
        # The summary says where the run was saved and how to resume it; quiet, the error line does.
        raise Interrupted("" if not (quiet and writer) else f"interrupted at step {result.state.step}; resume with: "
                                               f"{command} --resume {result.run_dir}")
    if result.stop_reason is StopReason.DIVERGED:
        raise CharrnnError("training diverged: the loss became NaN or infinite; try a lower --lr")
