"""``nasrun submit``, ``nasrun jobs`` and ``nasrun cancel``: an experiment as a chain of SLURM jobs."""
from __future__ import annotations

import os
import shlex
from typing import Optional, Tuple

import click

from ..errors import UserInputError
from .base import user_errors


def prepare(spec_path: str, template: Optional[str] = None, python: Optional[str] = None) -> Tuple:
    """Load the spec and render its batch script: (spec, paths, script text)."""
    from ..slurm.render import TEMPLATE_NAME, JobPaths, render, shipped_template
    from ..spec import load_spec
    spec = load_spec(spec_path)
    s = spec.slurm
    if template is None and s.template is not None:
        template = s.template if os.path.isabs(s.template) else \
            os.path.join(os.path.dirname(os.path.abspath(spec_path)), s.template)
    if template is None:
        text, template = shipped_template(), TEMPLATE_NAME
    else:
        try:
            with open(template, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UserInputError(f"{template}: cannot read the template: {e.strerror}") from None
        except UnicodeDecodeError:
            raise UserInputError(f"{template}: not a text file") from None
    exp_dir = os.path.abspath(spec.experiment.directory)
    paths = JobPaths(spec=os.path.abspath(spec_path), experiment_dir=exp_dir, workdir=os.getcwd(),
                     script=os.path.join(exp_dir, "slurm", "job.sh"))
    try:
        script = render(s, job_name=s.job_name or spec.experiment.name, paths=paths, template=text,
                        template_name=os.path.basename(template), python=python,
                        objective_function=(spec.objective.function
                                            if spec.objective.type == "function" else None))
    except ValueError as e:  # a path that cannot go on one line, or into an #SBATCH line
        raise UserInputError(f"{spec_path}: cannot write a safe batch script: {e}") from None
    return spec, paths, script


def experiment_dir(target: str) -> str:
    """DIR_OR_SPEC: an experiment directory, or a spec whose experiment directory is meant."""
    if os.path.isdir(target):
        return os.path.abspath(target)
    from ..spec import load_spec
    return os.path.abspath(load_spec(target).experiment.directory)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True,
              help="Print the batch script and the sbatch command; submit nothing.")
@click.option("--template", type=click.Path(dir_okay=False), default=None,
              help="Your own batch script template (default: slurm.template, or the one shipped with "
                   "nasrun: `nasrun submit --dry-run` shows it).")
@click.option("--python", default=None,
              help="Run `PYTHON -m nasrun` in the job instead of `nasrun` (overrides slurm.python).")
@user_errors
def submit(spec: str, dry_run: bool, template: Optional[str], python: Optional[str]) -> None:
    """Submit SPEC as a SLURM batch job that resubmits itself until the search is finished.

    The job runs `nasrun run SPEC` on every task, or `nasrun resume DIR` when the experiment
    already has a checkpoint, so submitting again after a cancel continues the search."""
    from ..slurm import chain, scheduler
    if python is not None and ("\n" in python or not python.strip()):
        raise UserInputError("--python: expected an interpreter path on one line")
    _, paths, script = prepare(spec, template, python)
    cmd = scheduler.sbatch_command(paths.script)
    if dry_run:
        click.echo(script, nl=not script.endswith("\n"))
        click.echo(f"# would write {paths.script} and run: {' '.join(shlex.quote(c) for c in cmd)}")
        return
    ids = [j.job_id for j in chain.chain_jobs(chain.read_events(paths.experiment_dir))]
    running = scheduler.active(ids) if ids else []
    if running:
        raise UserInputError(f"the experiment already has job(s) {', '.join(running)} queued or running; "
                             f"stop them first: nasrun cancel {paths.experiment_dir}")
    os.makedirs(os.path.dirname(paths.script), exist_ok=True)
    tmp = paths.script + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(script)
    os.chmod(tmp, 0o755)
    os.replace(tmp, paths.script)
    chain.clear_cancelled(paths.experiment_dir)
    job_id = scheduler.sbatch(paths.script)
    chain.append_event(paths.experiment_dir, "submitted", job_id, 0)
    click.echo(f"submitted job {job_id} ({paths.script}); follow it with: nasrun jobs {paths.experiment_dir}")


@click.command()
@click.argument("target", metavar="DIR_OR_SPEC", type=click.Path())
@user_errors
def jobs(target: str) -> None:
    """Show the SLURM jobs of an experiment (its chain of resubmissions) and their state."""
    from ..slurm import chain, scheduler
    exp = experiment_dir(target)
    events = chain.read_events(exp)
    if not events:
        raise UserInputError(f"{exp}: no SLURM jobs recorded (no {os.path.basename(chain.CHAIN_FILE)}); "
                             "submit with: nasrun submit SPEC")
    cj = chain.chain_jobs(events)
    states, source = scheduler.job_states([j.job_id for j in cj])
    click.echo(f"{exp}: {len(cj)} job(s); SLURM state from {source}")
    click.echo(f"{'job':>10}  {'resubmit':>8}  {'submitted':20}  {'exit':>4}  state")
    for j in cj:
        code = "-" if j.exit_code is None else str(j.exit_code)
        extra = " (checkpointed on signal)" if j.signalled and j.exit_code == 75 else ""
        state = states.get(j.job_id,
                           "unknown to SLURM now" if "not available" not in source else "not available")
        note = f"  [{j.note}]" if j.note else ""
        click.echo(f"{j.job_id:>10}  {j.resubmit:>8}  {j.submitted or '-':20}  {code:>4}  "
                   f"{state}{extra}{note}")
    if chain.is_cancelled(exp):
        click.echo("the chain is cancelled (nasrun cancel); nasrun submit starts a new one")


@click.command()
@click.argument("target", metavar="DIR_OR_SPEC", type=click.Path())
@user_errors
def cancel(target: str) -> None:
    """Stop an experiment's job chain: no more resubmissions, and scancel its queued/running jobs.

    The checkpoint stays: `nasrun submit SPEC` later resumes the search."""
    from ..slurm import chain, scheduler
    exp = experiment_dir(target)
    cj = chain.chain_jobs(chain.read_events(exp))
    if not cj:
        raise UserInputError(f"{exp}: no SLURM jobs recorded; nothing to cancel")
    chain.mark_cancelled(exp)  # first: a job that is just resubmitting itself sees it
    ids = [j.job_id for j in cj]
    live = scheduler.active(ids)
    if live is None:  # no squeue: cancel every job that has not reported its exit
        live = [j.job_id for j in cj if j.exit_code is None]
    scheduler.scancel(live)
    click.echo(f"cancelled {', '.join(live) if live else 'no queued or running job'}; "
               f"no further resubmission ({chain.cancel_marker(exp)})")
