"""The one error type the library raises for problems a user can fix; the CLI turns it into a
one-line message and an exit code."""


class CharrnnError(Exception):
    """A problem with the user's input or environment, reported without a traceback.

    exit_code follows the CLI convention: 2 for bad usage (options, arguments), 1 for failures
    at run time (unreadable files, corrupt checkpoints).
    """

    def __init__(self, message: str, *, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class UsageError(CharrnnError):
    """An invalid option value or argument combination (exit code 2)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)


class Interrupted(CharrnnError):
    """Ctrl-C, once whatever could be kept was kept (exit code 130). The message says what was
    kept; it is empty when the command has already said so (a training summary)."""

    def __init__(self, message: str = ""):
        super().__init__(message, exit_code=130)


SHOWN_BAD_LINES = 5  # line numbers listed in a malformed-input error; the rest are counted


def malformed_lines_error(what: str, numbers: list[int], need: str) -> CharrnnError:
    """The one-line error for a file with malformed lines: how many, the first line numbers,
    what a line needs, and the --skip-bad way out."""
    shown = ", ".join(str(n) for n in numbers[:SHOWN_BAD_LINES])
    more = f" and {len(numbers) - SHOWN_BAD_LINES} more" if len(numbers) > SHOWN_BAD_LINES else ""
    return CharrnnError(f"{what} has {len(numbers)} malformed line(s) (need {need}): line {shown}{more}; "
                        "fix them or pass --skip-bad to skip them")
