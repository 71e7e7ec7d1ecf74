"""The one error type edgekit raises for bad user input.

The CLI turns an :class:`EdgekitError` into a single ``error: ...`` line and a non-zero exit code; anything else is a
bug and keeps its traceback.
"""


class EdgekitError(Exception):
    """Bad input or an unsupported request, with a message that says what was wrong and what to do."""
