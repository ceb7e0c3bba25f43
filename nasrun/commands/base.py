"""What every command shares: user errors become one message and an exit code, no traceback."""
from __future__ import annotations

import contextlib
import functools
import sys
from typing import Iterator

import click

from ..errors import EXIT_RESUMABLE, NasrunError


@contextlib.contextmanager
def experiment_at(path: str) -> Iterator[None]:
    """A context in which an error about ``path`` holding no experiment (missing, or a directory
    without a checkpoint) also lists the experiments under ``./runs/``."""
    try:
        yield
    except NasrunError as e:
        from .where import experiments_note, holds_experiment
        if not holds_experiment(path):
            e.epilogue = experiments_note()
        raise


def user_errors(fn):
    """Turn NasrunError (and Ctrl-C) into a message on stderr and the error's exit code."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NasrunError as e:
            resumable = e.exit_code == EXIT_RESUMABLE  # not an error: the run can go on
            click.echo(f"nasrun: {'' if resumable else 'error: '}{e}", err=True)
            if e.epilogue:
                click.echo(e.epilogue, err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("nasrun: interrupted", err=True)
            sys.exit(130)
    return wrapper
