"""Commands beyond validate/init, one module each; add new ones to COMMANDS."""
from typing import List

import click

from .report import report
from .status import status

COMMANDS: List[click.Command] = [status, report]
