"""Render a SLURM batch script from a template and the spec's ``slurm`` section.

:func:`render` is a pure function (no files, no clocks, no environment): the same arguments give
the same script, which is what the golden-file tests compare. Templates use ``{{ name }}``
placeholders; every value put into them is either a number, a fixed string of our own, or passed
through :func:`quote` (``shlex.quote`` after refusing control characters, which no quoting makes
safe on one line). ``#SBATCH`` lines are different: sbatch reads them with its own parser, not the
shell's, and no quoting means the same to every SLURM version (see :mod:`nasrun.spec.slurm`), so
their values go in unquoted and :func:`sbatch_value` refuses any that sbatch would not read
literally.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from importlib.resources import files
from typing import Dict, List, Optional

from ..errors import UserInputError
from ..spec.slurm import CONTROL, SlurmSpec, extra_sbatch_problem, sbatch_literal_problem

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: the batch script template shipped with nasrun (package data; ``slurm/nasrun-job.sh`` in the repository)
TEMPLATE_NAME = "nasrun-job.sh"
DEFAULT_TEMPLATE = str(files(__package__).joinpath(TEMPLATE_NAME))
CHAIN_FILE = "slurm-jobs.json"
CANCEL_MARKER = "slurm-cancelled"
CHECKPOINT_FILE = "experiment.h5"


def shipped_template() -> str:
    """The text of the template shipped with nasrun (read through importlib.resources)."""
    return files(__package__).joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")


def quote(value: str) -> str:
    """``shlex.quote`` for a value that must also stay on one line."""
    if CONTROL.search(value):
        raise ValueError(f"value contains a newline or another control character: {value!r}")
    return shlex.quote(value)


def sbatch_value(value: str, what: str) -> str:
    """``value`` as it is, for an ``#SBATCH`` line; ValueError when sbatch would not read it literally
    (the spec's checks refuse such values first; this also covers paths and direct callers)."""
    problem = sbatch_literal_problem(value)
    if problem:
        raise ValueError(f"{what} cannot go into an #SBATCH line: {value!r} {problem}")
    return value


@dataclass(frozen=True)
class JobPaths:
    """Where the job runs and what it works on (absolute paths)."""

    spec: str  # the YAML spec passed to `nasrun run`
    experiment_dir: str  # <experiment dir>: checkpoint, chain file, slurm/ output
    workdir: str  # the directory `nasrun submit` ran in; relative paths in the spec start here
    script: str  # where the rendered script is written (resubmissions submit it again)

    @property
    def output(self) -> str:
        """sbatch's --output pattern: %j is the job id; a '%' of the directory is written '%%'."""
        return os.path.join(self.experiment_dir.replace("%", "%%"), "slurm", "%j.out")


def sbatch_lines(s: SlurmSpec, job_name: str, paths: JobPaths) -> List[str]:
    """One option per line, values unquoted: sbatch would split a line at whitespace into several
    options and strips quotes and backslashes (SLURM 2.x kept single quotes)."""
    opts = [f"--job-name={sbatch_value(job_name, 'the job name')}", f"--nodes={s.nodes}",
            f"--ntasks-per-node={s.tasks_per_node}", f"--cpus-per-task={s.cpus_per_task}"]
    if s.gpus_per_node:
        opts.append(f"--gpus-per-node={s.gpus_per_node}")
    for key in ("gres", "mem", "partition", "account", "qos"):
        value = getattr(s, key)
        if value is not None:
            opts.append(f"--{key}={sbatch_value(value, f'slurm.{key}')}")
    opts.append(f"--time={sbatch_value(s.time, 'slurm.time')}")
    # B: signals only the batch shell, which forwards SIGUSR1 to the launcher (see the template)
    opts.append(f"--signal=B:USR1@{s.signal_lead}")
    opts.append(f"--output={sbatch_value(paths.output, 'the log path (experiment.output_dir)')}")
    opts.append("--open-mode=append")  # a requeued job appends to its first attempt's log
    for i, item in enumerate(s.extra_sbatch):  # the spec refused these already; a direct caller may not
        problem = extra_sbatch_problem(item)
        if problem:
            raise ValueError(f"slurm.extra_sbatch[{i}]: {problem}")
        opts.append(item)
    return [f"#SBATCH {o}" for o in opts]


def setup_lines(s: SlurmSpec) -> List[str]:
    lines = []
    if s.modules:  # `module` is a shell function that a non-login batch shell may lack
        lines.append("type module >/dev/null 2>&1 || . /etc/profile >/dev/null 2>&1")
    lines += [f"module load {quote(m)} || {{ echo 'nasrun: module load failed' >&2; exit 1; }}"
              for m in s.modules]
    lines += [f"export {name}={quote(value)}" for name, value in s.env.items()]
    if s.container and s.container_runtime == "charliecloud" and s.wants_gpus:
        # Charliecloud's way to the GPUs: the host's NVIDIA libraries copied into the image (its
        # /dev is the host's). Only a directory image can take them; a SquashFS image must have
        # had them injected before it was made (ch-fromhost --nvidia DIR, then ch-convert).
        image = quote(s.container)
        lines += [f"if [ -d {image} ]; then",
                  f"  ch-fromhost --nvidia {image} || {{ echo 'nasrun: ch-fromhost --nvidia failed' >&2; "
                  "exit 1; }",
                  "fi"]
    return lines


#: runs "$@" with SIGTERM and SIGUSR1 ignored (an ignored signal stays ignored across exec;
#: nasrun sets its own handlers)
IGNORE_STOP_SIGNALS = 'trap "" TERM USR1; exec "$@"'


def container_words(s: SlurmSpec, image: str, workdir: Optional[str] = None) -> List[str]:
    """The container runtime's words before the command that runs inside ``image`` (quoted).

    Apptainer/Singularity: ``exec``, ``--nv`` when the spec asks for GPUs, ``--bind`` each bind.
    Charliecloud: ``ch-run --set-env`` (the image's own environment: its PATH, from the recipe's
    ENV lines, which ``ch-run`` leaves out otherwise), ``--bind=`` each bind, then ``--``; its GPU
    route is ``ch-fromhost --nvidia`` on the image before the job (see :func:`setup_lines`), and
    ``--cd=WORKDIR`` (``ch-run`` starts in ``/``, not in the directory it was started in).
    ``ch-run`` of a SquashFS file stays the parent of the command (it serves the mounted image)
    and does not pass signals on: mpirun and SLURM signal the whole task (process group or
    process tree), so nasrun gets SIGUSR1/SIGTERM itself, and ``ch-run`` started with them
    ignored (:data:`IGNORE_STOP_SIGNALS`) lives on until nasrun has checkpointed instead of
    dying at once (exit 138) and taking the image away from it."""
    if s.container_runtime == "charliecloud":
        cd = [f"--cd={quote(workdir)}"] if workdir else []
        return ["sh", "-c", quote(IGNORE_STOP_SIGNALS), "ch-run", "ch-run", "--set-env", *cd,
                *(f"--bind={quote(b)}" for b in s.binds), quote(image), "--"]
    words = [s.container_runtime, "exec"]
    if s.wants_gpus:
        words.append("--nv")
    for b in s.binds:
        words += ["--bind", quote(b)]
    return words + [quote(image)]


def nasrun_words(s: SlurmSpec, python: Optional[str] = None, workdir: Optional[str] = None) -> List[str]:
    """The command that runs ``nasrun`` on every task, already quoted word by word:
    launcher, optional container runtime, then ``nasrun`` or ``PYTHON -m nasrun``."""
    if s.launcher == "srun":
        words = ["srun", f"--mpi={quote(s.mpi)}"]
    else:
        words = ["mpirun", "-np", '"$SLURM_NTASKS"']
    words += [quote(a) for a in s.launcher_args]
    if s.container:
        words += container_words(s, s.container, workdir)
    py = python or s.python
    words += [quote(py), "-m", "nasrun"] if py else ["nasrun"]
    return words


def render(s: SlurmSpec, *, job_name: str, paths: JobPaths, template: str,
           template_name: str = "nasrun-job.sh", python: Optional[str] = None,
           objective_function: Optional[str] = None) -> str:
    """The batch script text: ``template`` with its ``{{ placeholders }}`` filled in.

    Placeholders: sbatch, setup, nasrun, spec, experiment_dir, workdir, script, job_name,
    max_resubmits, chain_file, cancel_marker, checkpoint_file, template, resume_args. An unknown
    placeholder is a UserInputError naming the template. ``objective_function`` (MODULE:FUNCTION
    of a function objective) becomes ``resume_args``: `` --objective MODULE:FUNCTION``, the
    confirmation that `nasrun resume` asks for before it imports and runs that function.
    """
    values: Dict[str, str] = {
        "sbatch": "\n".join(sbatch_lines(s, job_name, paths)),
        "setup": "\n".join(setup_lines(s)) or "# (no modules or environment variables in the spec)",
        "nasrun": " ".join(nasrun_words(s, python, paths.workdir)),
        "spec": quote(paths.spec),
        "experiment_dir": quote(paths.experiment_dir),
        "workdir": quote(paths.workdir),
        "script": quote(paths.script),
        "job_name": quote(job_name),
        "max_resubmits": str(int(s.max_resubmits)),
        "chain_file": quote(CHAIN_FILE),
        "cancel_marker": quote(CANCEL_MARKER),
        "checkpoint_file": quote(CHECKPOINT_FILE),
        "template": quote(template_name),
        "resume_args": f" --objective {quote(objective_function)}" if objective_function else "",
    }

    def fill(m: re.Match) -> str:
        name = m.group(1)
        if name not in values:
            raise UserInputError(f"{template_name}: unknown placeholder {{{{ {name} }}}}; known: "
                                 f"{', '.join(sorted(values))}")
        return values[name]

    return PLACEHOLDER.sub(fill, template)
