"""The one error type for things a user got wrong (bad file, no face, limits exceeded).

Command-line entry points catch it and print its message without a traceback; the demo shows it
in the page. Its message always says what is wrong and what to do about it.
"""


class InputError(Exception):
    """A problem with the user's input, explained in plain words."""
