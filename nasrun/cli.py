"""The ``nasrun`` command line (click). Each command lives in a small function here or in
:mod:`nasrun.commands`; user errors print one clear message and exit with the code from
:mod:`nasrun.errors`, never a traceback."""
from __future__ import annotations

import click

from . import __version__
from .commands.base import user_errors


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nasrun")
def main() -> None:
    """Neural architecture search and hyperparameter optimization as MPI batch jobs.

    Exit codes: 0 success, 1 the run failed, 2 bad input, 75 checkpointed on a signal
    (resume with `nasrun resume`).
    """


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@user_errors
def validate(spec: str) -> None:
    """Check a YAML experiment spec and print a summary; exit 2 on any problem.

    Beyond the spec itself: imports a function objective (running its module's code), reads
    the data set's headers and labels, checks the strategy's options and time limits.
    """
    from .spec import load_spec
    from .spec.preflight import preflight
    from .summary import spec_summary
    s = load_spec(spec)
    preflight(s, spec)  # imports a function objective, reads the data set's headers
    click.echo(spec_summary(s, spec))


@main.command()
@click.argument("path", type=click.Path(dir_okay=False), default="nasrun.yaml")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@user_errors
def init(path: str, force: bool) -> None:
    """Write a commented starter spec to PATH (default nasrun.yaml)."""
    import os
    from .errors import UserInputError
    from .starter import STARTER_SPEC
    if os.path.exists(path) and not force:
        raise UserInputError(f"{path} exists; use --force to overwrite it")
    with open(path, "w", encoding="utf-8") as f:
        f.write(STARTER_SPEC)
    click.echo(f"wrote {path}; check it with: nasrun validate {path}")


def _register() -> None:
    from .commands import COMMANDS
    for cmd in COMMANDS:
        main.add_command(cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
