"""The ``nasrun`` command line (click). Each command lives in a small function here or in
:mod:`nasrun.commands`; user errors print one clear message and exit with the code from
:mod:`nasrun.errors`, never a traceback."""
from __future__ import annotations

from typing import Optional

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
@click.argument("path", type=click.Path(dir_okay=False), required=False)
@click.option("--example", "example", metavar="NAME",
              help="Write the shipped example NAME instead of the starter spec (see --list).")
@click.option("--list", "list_examples", is_flag=True, help="List the shipped examples and exit.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@user_errors
def init(path: Optional[str], example: Optional[str], list_examples: bool, force: bool) -> None:
    """Write a commented starter spec to PATH (default nasrun.yaml), or with --example NAME the
    shipped example NAME (default NAME.yaml)."""
    import os

    from .errors import UserInputError
    from .starter import example_names, example_summary, example_text, starter_text
    if list_examples:
        names = example_names()
        width = max(map(len, names))
        for name in names:
            click.echo(f"{name:<{width}}  {example_summary(name)}")
        click.echo(f"write one with: nasrun init --example {names[0]} [PATH]")
        return
    text = starter_text() if example is None else example_text(example)
    path = path or ("nasrun.yaml" if example is None else f"{example}.yaml")
    if os.path.exists(path) and not force:
        raise UserInputError(f"{path} exists; use --force to overwrite it")
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise UserInputError(f"{path}: cannot write the spec: {e.strerror}") from None
    click.echo(f"wrote {path}; check it with: nasrun validate {path}")


def _register() -> None:
    from .commands import COMMANDS
    for cmd in COMMANDS:
        main.add_command(cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
