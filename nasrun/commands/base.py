"""What every command shares: user errors become one message and an exit code, no traceback."""
from __future__ import annotations

import functools
import sys

import click

from ..errors import EXIT_RESUMABLE, NasrunError


def user_errors(fn):
    """Turn NasrunError (and Ctrl-C) into a message on stderr and the error's exit code."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NasrunError as e:
            resumable = e.exit_code == EXIT_RESUMABLE  # not an error: the run can go on
            click.echo(f"nasrun: {'' if resumable else 'error: '}{e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("nasrun: interrupted", err=True)
            sys.exit(130)
    return wrapper
