"""Commands beyond validate/init, one module each; add new ones to COMMANDS."""
from typing import List

import click

from .run import run

COMMANDS: List[click.Command] = [run]
