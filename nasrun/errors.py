"""Exceptions nasrun raises on purpose.

:class:`UserInputError` means the user can fix it (a bad spec, a missing or malformed data file);
the CLI prints its message without a traceback.
"""


class NasrunError(Exception):
    """Base class of nasrun's own errors."""


class UserInputError(NasrunError):
    """Something the user supplied is missing or wrong; the message says what and where."""
