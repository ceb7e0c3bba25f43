"""Commands beyond validate/init, one module each; add new ones to COMMANDS."""
from typing import List

import click

from .export import export
from .report import report
from .run import resume, run
from .simulate import simulate
from .status import status
from .submit import cancel, jobs, submit

COMMANDS: List[click.Command] = [run, resume, simulate, status, report, export, submit, jobs, cancel]
