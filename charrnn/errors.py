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
