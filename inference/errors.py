"""The one error type for things a user got wrong (bad file, no face, limits exceeded).

Command-line entry points catch it and print its message without a traceback; the demo shows it
in the page. Its message always says what is wrong and what to do about it.
"""


class InputError(Exception):
    """A problem with the user's input, explained in plain words."""


def cli(main):
    """Decorate a command's ``main``: an :class:`InputError` becomes one ``error: …`` line on stderr and exit
    status 2 — never a traceback for a user's mistake."""
    import functools
    import sys

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    return wrapper
