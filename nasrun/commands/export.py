"""``nasrun export DIR_OR_FILE [--trial ID | --best] --out DIR``: a trial's network as a standalone
PyTorch module (model.py, weights, recipe.json, train.py, README.md; see :mod:`nasrun.export`)."""
from __future__ import annotations

from typing import Optional

import click

from .base import experiment_at, user_errors


@click.command("export")
@click.argument("path", metavar="DIR_OR_FILE", type=click.Path())
@click.option("--trial", "trial", type=int, default=None, help="The trial to export (its id).")
@click.option("--best", "best", is_flag=True, help="Export the best finished trial (the default).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--require-weights", is_flag=True,
              help="Fail (exit 2) when the trial's trained weights are not in the checkpoint.")
@click.option("--force", is_flag=True, help="Write into a non-empty output directory.")
@user_errors
def export(path: str, trial: Optional[int], best: bool, out: str, require_weights: bool, force: bool) -> None:
    """Export a trial of the experiment at DIR_OR_FILE (its directory or experiment.h5) as a
    PyTorch module that needs only torch: model.py (build()/load()), weights.safetensors and
    weights.pt (when the checkpoint kept them: checkpoint.keep_best), recipe.json, train.py and
    README.md. Without weights the architecture and recipe are still written (exit 0, with a
    warning) unless --require-weights."""
    from ..errors import UserInputError
    from ..export import export_trial
    if trial is not None and best:
        raise UserInputError("give --trial ID or --best, not both")
    with experiment_at(path):
        res = export_trial(path, out, trial, require_weights, force)
    for note in res.warnings:
        click.echo(f"nasrun: warning: {note}", err=True)
    value = "n/a" if res.value is None else f"{res.value:.4f}"
    click.echo(f"exported trial {res.trial_id} ({res.metric} {value}, "
               f"{'with' if res.weights else 'WITHOUT'} trained weights) to {out}: {', '.join(res.files)}")
