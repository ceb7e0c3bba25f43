"""Commands beyond validate/init, one module each; add new ones to COMMANDS."""
from typing import List

import click

COMMANDS: List[click.Command] = []

from .submit import submit  # noqa: E402
COMMANDS.append(submit)
from .submit import jobs  # noqa: E402
COMMANDS.append(jobs)
from .submit import cancel  # noqa: E402
COMMANDS.append(cancel)
