"""The one error type edgekit raises for bad user input.

The CLI turns an :class:`EdgekitError` into a single ``error: ...`` line and a non-zero exit code; anything else is a
bug and keeps its traceback.
"""


class EdgekitError(Exception):
    """Bad input or an unsupported request, with a message that says what was wrong and what to do."""


def friendly(fn):
    """Decorate a click command so that an :class:`EdgekitError` becomes one ``error:`` line and exit code 2."""
    import functools
    import sys

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgekitError as e:
            import click

            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper
