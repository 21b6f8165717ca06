"""User-facing errors.

Raise :class:`UserError` for anything the *user* got wrong (bad file, bad option, mismatched store).
The command-line entry point prints it as one line (``genomics-lm: error: ...``) and exits non-zero
without a traceback. Bugs stay ordinary exceptions and keep their tracebacks.
"""


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2, no traceback."""
