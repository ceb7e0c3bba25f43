"""The ``slurm`` section of a spec: what ``nasrun submit`` puts in the batch script.

Every value ends up in a bash script: in an ``#SBATCH`` line (read by sbatch's own parser) or
in the script body (always through ``shlex.quote``). Values that cannot be made safe in an
``#SBATCH`` line (newlines and other control characters) or that have a fixed format (time,
memory, names) are checked here, so a bad value is a SpecError naming ``slurm.<key>``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Optional

from .fields import field, join

#: printable text: no newline, no other control character (they could end an #SBATCH line)
TEXT = r"[^\x00-\x1f\x7f]+"
TEXT_HELP = "expected text without newlines or other control characters"
#: partition, account, QOS: what SLURM itself accepts (a comma-separated list for partitions)
SLURM_NAME = r"[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*"
MODULE = re.compile(r"[A-Za-z0-9_.+-][A-Za-z0-9_.+/:-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
EXTRA_SBATCH = re.compile(r"--[A-Za-z][A-Za-z0-9-]*(=[^\x00-\x1f\x7f]*)?")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: sbatch options that the batch script's own machinery relies on
RESERVED_SBATCH = {"signal", "output", "error", "chdir", "job-name", "requeue", "no-requeue",
                   "parsable", "wrap", "export"}
#: the batch script's own variables; a user's env entry must not replace them
RESERVED_ENV_PREFIX = "NASRUN_SLURM_"

_TIME = re.compile(r"(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?)"
                   r"|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?")


def parse_time(text: str) -> int:
    """A SLURM time limit in seconds: ``minutes``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``
    or ``D-HH:MM:SS``. Raises ValueError for anything else (and for a zero limit)."""
    m = _TIME.fullmatch(text.strip())
    if not m:
        raise ValueError(text)
    if m.group("d") is not None:
        secs = (int(m.group("d")) * 86400 + int(m.group("dh")) * 3600 + int(m.group("dm") or 0) * 60
                + int(m.group("ds") or 0))
    elif m.group("c") is not None:
        secs = int(m.group("a")) * 3600 + int(m.group("b")) * 60 + int(m.group("c"))
    elif m.group("b") is not None:
        secs = int(m.group("a")) * 60 + int(m.group("b"))
    else:
        secs = int(m.group("a")) * 60
    if secs <= 0:
        raise ValueError(text)
    return secs


@dataclass(frozen=True)
class SlurmSpec:
    job_name: Optional[str] = field(None, pattern=TEXT, pattern_help=TEXT_HELP)  # default: experiment name
    partition: Optional[str] = field(None, pattern=SLURM_NAME,
                                     pattern_help="expected a partition name (letters, digits, "
                                                  "'_', '.', '+', '-'; several separated by ',')")
    account: Optional[str] = field(None, pattern=SLURM_NAME,
                                   pattern_help="expected an account name (letters, digits, '_', '.', '+', '-')")
    qos: Optional[str] = field(None, pattern=SLURM_NAME,
                               pattern_help="expected a QOS name (letters, digits, '_', '.', '+', '-')")
    nodes: int = field(1, min=1)
    tasks_per_node: int = field(3, min=1)
    cpus_per_task: int = field(1, min=1)
    gpus_per_node: int = field(0, min=0)
    gres: Optional[str] = field(None, pattern=r"[A-Za-z][A-Za-z0-9_.:/-]*(,[A-Za-z][A-Za-z0-9_.:/-]*)*",
                                pattern_help="expected a GRES list like 'gpu:4' or 'gpu:a100:2,nvme:1'")
    mem: Optional[str] = field(None, pattern=r"[0-9]+[KMGT]?",
                               pattern_help="expected memory per node like '4000M', '16G' or '0' (all)")
    # Quote it in YAML: an unquoted 1:30:00 is read by YAML 1.1 as a number (sexagesimal).
    time: Any = "01:00:00"
    signal_lead: int = field(120, min=10)  # seconds before the time limit that SLURM signals the job
    max_resubmits: int = field(5, min=0)
    launcher: Literal["srun", "mpirun"] = "srun"
    mpi: str = field("pmix", pattern=r"[A-Za-z0-9_]+",
                     pattern_help="expected an srun --mpi plugin name such as pmix or pmi2")
    launcher_args: List[str] = field([])  # extra arguments of srun / mpirun, one per item
    python: Optional[str] = field(None, pattern=TEXT, pattern_help=TEXT_HELP)  # run `PYTHON -m nasrun`
    modules: List[str] = field([])
    env: Dict[str, str] = field({})
    extra_sbatch: List[str] = field([])
    container: Optional[str] = field(None, pattern=TEXT, pattern_help=TEXT_HELP)
    container_runtime: Literal["apptainer", "singularity"] = "apptainer"
    binds: List[str] = field([])
    template: Optional[str] = field(None, pattern=TEXT, pattern_help=TEXT_HELP)

    def _check(self, path, ctx, data):
        def err(msg, key, parent=data, k=None):
            return ctx.error(msg, join(path, key), parent, k if k is not None else key)

        if isinstance(self.time, bool) or not isinstance(self.time, str):
            raise err("expected a time limit as a quoted string such as \"30\" (minutes), \"45:00\", "
                      "\"1:30:00\" or \"2-00:00:00\" (YAML reads an unquoted 1:30:00 as a number), "
                      f"got {type(self.time).__name__} {self.time!r}", "time")
        try:
            limit = parse_time(self.time)
        except ValueError:
            raise err("expected a time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, "
                      f"got {self.time!r}", "time") from None
        if self.signal_lead >= limit:
            raise err(f"signal_lead ({self.signal_lead} s) must be shorter than the time limit "
                      f"({self.time} = {limit} s)", "signal_lead")
        for i, m in enumerate(self.modules):
            if not MODULE.fullmatch(m):
                raise err(f"expected a module name like 'openmpi/4.1.4' (letters, digits, '_', '.', '+', "
                          f"'-', '/', ':'), got {m!r}", f"modules[{i}]", k="modules")
        env = data.get("env") or {}
        for name, value in self.env.items():
            if not ENV_NAME.fullmatch(name):
                raise err(f"expected an environment variable name (letters, digits, '_', not starting "
                          f"with a digit), got {name!r}", f"env.{name}", env, name)
            if name.startswith(RESERVED_ENV_PREFIX):
                raise err(f"names starting with {RESERVED_ENV_PREFIX} are the batch script's own",
                          f"env.{name}", env, name)
            if CONTROL.search(value):
                raise err(f"{TEXT_HELP}, got {value!r}", f"env.{name}", env, name)
        for i, line in enumerate(self.extra_sbatch):
            if not EXTRA_SBATCH.fullmatch(line):
                raise err("expected an sbatch option starting with '--', like '--constraint=a100' "
                          f"(one per item, no newlines), got {line!r}", f"extra_sbatch[{i}]", k="extra_sbatch")
            opt = line[2:].split("=", 1)[0]
            if opt in RESERVED_SBATCH:
                raise err(f"--{opt} is set by nasrun submit itself (it drives checkpointing, output and "
                          "resubmission)", f"extra_sbatch[{i}]", k="extra_sbatch")
        for key in ("launcher_args", "binds"):
            for i, v in enumerate(getattr(self, key)):
                if CONTROL.search(v):
                    raise err(f"{TEXT_HELP}, got {v!r}", f"{key}[{i}]", k=key)
        if self.container is None and self.binds:  # (container_runtime may stay: dump_spec writes it)
            raise err("only used with 'container: IMAGE'", "binds")

    @property
    def time_seconds(self) -> int:
        return parse_time(self.time)

    @property
    def wants_gpus(self) -> bool:
        return self.gpus_per_node > 0 or bool(self.gres and re.search(r"(^|,)gpu", self.gres))
