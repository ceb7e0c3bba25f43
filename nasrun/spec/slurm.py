r"""The ``slurm`` section of a spec: what ``nasrun submit`` puts in the batch script.

Every value ends up in a bash script: in an ``#SBATCH`` line (read by sbatch's own parser) or
in the script body (always through ``shlex.quote``). Values that cannot be made safe in an
``#SBATCH`` line or that have a fixed format (time, memory, names) are checked here, so a bad
value is a SpecError naming ``slurm.<key>``.

How sbatch reads an ``#SBATCH`` line (SLURM 22.05, ``_get_argument`` in src/sbatch/opt.c; checked
against a real sbatch): it splits the line at whitespace into several arguments and hands them all
to getopt_long, so ``#SBATCH --comment=a --export=NONE`` sets both options; an unquoted ``#``
ends the line; ``\`` escapes the next character, also inside quotes; ``"..."`` and ``'...'``
group and are removed, but old releases (SLURM 2.x) knew only double quotes (a single quote was
kept as a literal character), and an unmatched quote is fatal. getopt_long also takes any unique
prefix of a long option (``--sig=`` is ``--signal=``). No quoting therefore means the same thing
to every sbatch, so values for ``#SBATCH`` lines are never quoted: they are refused unless every
character is one that sbatch takes literally (:data:`SBATCH_LITERAL`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Mapping, Optional

from ..errors import SpecError
from .fields import Ctx, field, join

#: printable text: no newline, no other control character (they could end an #SBATCH line)
TEXT = r"[^\x00-\x1f\x7f]+"
TEXT_HELP = "expected text without newlines or other control characters"
#: partition, account, QOS: what SLURM itself accepts (a comma-separated list for partitions)
SLURM_NAME = r"[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*"
MODULE = re.compile(r"[A-Za-z0-9_.+-][A-Za-z0-9_.+/:-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: what sbatch reads literally in an #SBATCH line: printable ASCII but space, quotes, backslash, '#'
SBATCH_LITERAL = re.compile(r"[!$%&()*+,\-./0-9:;<=>?@A-Z\[\]^_`a-z{|}~]*")
SBATCH_LITERAL_HELP = ("printable ASCII without spaces, quotes, backslashes or '#' (sbatch does not "
                       "read those literally in an #SBATCH line)")
EXTRA_SBATCH = re.compile(r"--(?P<name>[A-Za-z][A-Za-z0-9-]*)(?:=(?P<value>.*))?", re.DOTALL)
#: options that the rendered script sets from a key of its own (``slurm.<key>``)
SBATCH_FROM_KEY = {"job-name": "job_name", "nodes": "nodes", "ntasks-per-node": "tasks_per_node",
                   "cpus-per-task": "cpus_per_task", "gpus-per-node": "gpus_per_node", "gres": "gres",
                   "mem": "mem", "partition": "partition", "account": "account", "qos": "qos",
                   "time": "time", "signal": "signal_lead"}
#: options that checkpoint-on-time-limit, the log and the resubmission chain rely on: the signal,
#: the environment (NASRUN_SLURM_RESUBMIT), one job per experiment (no --array), the dependency
#: between jobs, the appended log, the job's directory, sbatch returning at once with the id
RESERVED_SBATCH = set(SBATCH_FROM_KEY) | {
    "output", "error", "open-mode", "chdir", "export", "export-file", "array", "dependency",
    "requeue", "no-requeue", "parsable", "wrap", "wait", "test-only"}
#: sbatch options whose full name begins another, reserved, one: exact names, not abbreviations
SBATCH_PREFIX_NAMES = {"gpus", "ntasks"}
#: sbatch's short options (22.05) and their long names
SBATCH_SHORT = {"a": "array", "A": "account", "b": "begin", "c": "cpus-per-task", "C": "constraint",
                "d": "dependency", "D": "chdir", "e": "error", "F": "nodefile", "G": "gpus", "H": "hold",
                "i": "input", "J": "job-name", "k": "no-kill", "L": "licenses", "m": "distribution",
                "M": "clusters", "n": "ntasks", "N": "nodes", "o": "output", "O": "overcommit",
                "p": "partition", "q": "qos", "Q": "quiet", "s": "oversubscribe", "S": "core-spec",
                "t": "time", "v": "verbose", "W": "wait", "w": "nodelist", "x": "exclude"}
#: the batch script's own variables; a user's env entry must not replace them
RESERVED_ENV_PREFIX = "NASRUN_SLURM_"

#: why an option is reserved, where one reason says more than "nasrun sets it"
_RESERVED_WHY = {
    "array": "one experiment is one job: every array task would run the same search in the same "
             "directory",
    "dependency": "the resubmission chain makes each job depend on the one before",
    "export": "the resubmission chain passes NASRUN_SLURM_RESUBMIT in the environment",
    "export-file": "the resubmission chain passes NASRUN_SLURM_RESUBMIT in the environment",
    "wait": "the job's own resubmission would wait for its successor, which waits for it",
}


def sbatch_literal_problem(value: str) -> Optional[str]:
    """None when sbatch reads ``value`` literally in an ``#SBATCH`` line (:data:`SBATCH_LITERAL`),
    else what is wrong, naming the first character that is not."""
    if SBATCH_LITERAL.fullmatch(value):
        return None
    c = next(c for c in value if not SBATCH_LITERAL.fullmatch(c))
    if c in " \t":
        what = "whitespace (sbatch splits an #SBATCH line there)"
    elif c in "'\"":
        what = f"a quote ({c}) (sbatch removes quotes; old versions keep single quotes)"
    elif c == "\\":
        what = "a backslash (sbatch drops it and keeps the next character)"
    elif c == "#":
        what = "'#' (sbatch ignores the rest of the line from there)"
    elif CONTROL.match(c):
        what = f"a control character ({c!r})"
    else:
        what = f"a non-ASCII or unprintable character ({c!r})"
    return f"contains {what}; expected {SBATCH_LITERAL_HELP}"


def extra_sbatch_problem(item: str) -> Optional[str]:
    """None when ``item`` is one sbatch option that nasrun leaves to the user, else why not."""
    short = re.match(r"-([A-Za-z])", item)
    if short and not item.startswith("--"):
        long = SBATCH_SHORT.get(short.group(1))
        if long in RESERVED_SBATCH:
            return f"-{short.group(1)} (sbatch's short form of --{long}) " + _reserved(long)
        return (f"expected a long option ('--{long or 'name'}=value'), got the short form {item!r}"
                " (one option per item)")
    m = EXTRA_SBATCH.fullmatch(item)
    if not m:
        return (f"expected one sbatch option '--name' or '--name=value', like '--constraint=a100', "
                f"got {item!r}")
    problem = sbatch_literal_problem(item)
    if problem:
        several = re.search(r"\s", item) and not CONTROL.search(item)
        return (f"expected exactly one sbatch option per item: sbatch splits an #SBATCH line at "
                f"whitespace and would read {item!r} as several options" if several
                else f"{item!r} {problem}")
    name = m.group("name")
    if name in RESERVED_SBATCH:
        return f"--{name} " + _reserved(name)
    if name not in SBATCH_PREFIX_NAMES:
        meant = sorted(r for r in RESERVED_SBATCH if r.startswith(name))
        if meant:
            return (f"--{name} is an abbreviation of {' or '.join('--' + r for r in meant)} to sbatch "
                    f"(it takes unique prefixes) and --{meant[0]} " + _reserved(meant[0]))
    return None


def _reserved(name: str) -> str:
    if name in SBATCH_FROM_KEY:
        return f"is written by nasrun submit from slurm.{SBATCH_FROM_KEY[name]}: set that key instead"
    why = _RESERVED_WHY.get(name, "checkpointing on the time limit, the log and resubmission rely on it")
    return f"is set by nasrun submit itself ({why})"


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
    job_name: Optional[str] = None  # default: experiment name; checked in _check (#SBATCH line)
    partition: Optional[str] = field(None, pattern=SLURM_NAME,
                                     pattern_help="expected a partition name (letters, digits, "
                                                  "'_', '.', '+', '-'; several separated by ',')")
    account: Optional[str] = field(None, pattern=SLURM_NAME,
                                   pattern_help="expected an account name (letters, digits, '_', '.', "
                                                "'+', '-')")
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
    # apptainer/singularity: `RUNTIME exec [--nv] IMAGE nasrun`; charliecloud: `ch-run IMAGE -- nasrun`
    container_runtime: Literal["apptainer", "singularity", "charliecloud"] = "apptainer"
    binds: List[str] = field([])
    template: Optional[str] = field(None, pattern=TEXT, pattern_help=TEXT_HELP)

    def _check(self, path: str, ctx: Ctx, data: Mapping[str, Any]) -> None:
        def err(msg: str, key: str, parent: Any = data, k: Optional[str] = None) -> SpecError:
            return ctx.error(msg, join(path, key), parent, k if k is not None else key)

        if self.job_name is not None:
            problem = "is empty" if not self.job_name else sbatch_literal_problem(self.job_name)
            if problem:
                raise err(f"expected a SLURM job name; {self.job_name!r} {problem}", "job_name")
        if isinstance(self.time, bool) or not isinstance(self.time, str):
            raise err("expected a time limit as a quoted string such as \"30\" (minutes), \"45:00\", "
                      "\"1:30:00\" or \"2-00:00:00\" (YAML reads an unquoted 1:30:00 as a number), "
                      f"got {type(self.time).__name__} {self.time!r}", "time")
        problem = sbatch_literal_problem(self.time)
        if problem:
            raise err(f"expected a time limit such as \"1:30:00\"; {self.time!r} {problem}", "time")
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
        for i, item in enumerate(self.extra_sbatch):
            problem = extra_sbatch_problem(item)
            if problem:
                raise err(problem, f"extra_sbatch[{i}]", k="extra_sbatch")
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
