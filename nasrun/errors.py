"""Errors a user can act on, and the exit codes the CLI maps them to.

Exit codes (documented in the README):
    0   success (the search finished its budget)
    1   the run failed (e.g. too many consecutive failed trials)
    2   bad input: a spec, a checkpoint or a command-line value that is wrong, or a worker rank
        that could not prepare (objective import, data set, device)
    75  resumable: the run checkpointed on a signal (SLURM time limit, preemption) and can be
        resumed with ``nasrun resume`` (75 is EX_TEMPFAIL from sysexits.h)
"""
from __future__ import annotations

from typing import Optional

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_RESUMABLE = 75


class NasrunError(Exception):
    """An error with a message meant for the user; the CLI prints it without a traceback."""

    exit_code = EXIT_FAILED
    #: printed after the message (the CLI): what to do next, e.g. the experiments there are
    epilogue: Optional[str] = None


class UserInputError(NasrunError):
    exit_code = EXIT_BAD_INPUT


class SpecError(UserInputError):
    """A problem in an experiment spec: names the file, the line, the key path and what was expected."""

    def __init__(self, message: str, path: str = "", file: Optional[str] = None,
                 line: Optional[int] = None):
        self.message, self.path, self.file, self.line = message, path, file, line
        super().__init__(self.format())

    def format(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.path + ': ' if self.path else ''}{self.message}"


class CheckpointError(UserInputError):
    """A checkpoint that cannot be used (missing, corrupt in every generation, not nasrun's)."""


class RunFailed(NasrunError):
    exit_code = EXIT_FAILED


class Resumable(NasrunError):
    """The run stopped on a signal after checkpointing; ``nasrun resume`` continues it."""

    exit_code = EXIT_RESUMABLE


class StorageError(NasrunError):
    """The checkpoint cannot be written (disk full, read-only, permissions); what was written
    before stays intact."""

    exit_code = EXIT_FAILED
