"""Thin calls to the SLURM client commands (sbatch, squeue, sacct, scontrol, scancel).

Every call has a timeout. Missing commands and failures become NasrunError messages; queries
answer ``None`` for "not available" instead of failing, so ``nasrun jobs`` works anywhere.
"""
from __future__ import annotations

import shutil
import subprocess
from typing import Dict, Iterable, List, Optional, Tuple

from ..errors import NasrunError, UserInputError

TIMEOUT = 30
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED",
          "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT"}


def _run(args: List[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def sbatch_command(script: str) -> List[str]:
    """The command `nasrun submit` runs (and `--dry-run` prints). The export resets the
    resubmission count: a fresh submission starts a new chain."""
    return ["sbatch", "--parsable", "--export=ALL,NASRUN_SLURM_RESUBMIT=0", script]


def sbatch(script: str) -> str:
    """Submit ``script``; return the job id."""
    if shutil.which("sbatch") is None:
        raise UserInputError("sbatch not found: run nasrun submit where SLURM is installed "
                             "(use --dry-run to see the script)")
    try:
        p = _run(sbatch_command(script))
    except subprocess.TimeoutExpired:
        raise NasrunError(f"sbatch did not answer in {TIMEOUT} s") from None
    if p.returncode != 0:
        raise NasrunError(f"sbatch failed: {p.stderr.strip() or p.stdout.strip()}")
    job_id = p.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise NasrunError(f"sbatch answered {p.stdout.strip()!r}, expected a job id")
    return job_id


def _squeue(ids: Iterable[str]) -> Optional[Dict[str, str]]:
    if shutil.which("squeue") is None:
        return None
    try:
        p = _run(["squeue", "-h", "-a", "-o", "%i|%T"])
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        return None
    wanted = set(ids)
    out = {}
    for line in p.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid in wanted:
            out[jid] = state
    return out


def _sacct(ids: List[str]) -> Optional[Dict[str, Tuple[str, str]]]:
    if shutil.which("sacct") is None or not ids:
        return None
    try:
        p = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o", "JobID,State,ExitCode"])
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:  # e.g. "Slurm accounting storage is disabled"
        return None
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            out[parts[0]] = (parts[1].split()[0], parts[2])
    return out


def _scontrol(job_id: str) -> Optional[Tuple[str, str]]:
    if shutil.which("scontrol") is None:
        return None
    try:
        p = _run(["scontrol", "show", "job", "-o", job_id])
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        return None
    fields = dict(w.split("=", 1) for w in p.stdout.split() if "=" in w)
    if "JobState" not in fields:
        return None
    return fields["JobState"], fields.get("ExitCode", "")


def job_states(ids: List[str]) -> Tuple[Dict[str, str], str]:
    """SLURM's state of each job id it still knows, and which commands answered.

    squeue for queued/running jobs; sacct for finished ones (needs accounting storage, which
    small clusters may not have); scontrol for finished jobs still in slurmctld's memory."""
    states: Dict[str, str] = {}
    sources = []
    q = _squeue(ids)
    if q is not None:
        sources.append("squeue")
        states.update(q)
    rest = [i for i in ids if i not in states]
    acct = _sacct(rest) if rest else None
    if acct is not None:
        sources.append("sacct")
        for jid, (state, code) in acct.items():
            states[jid] = f"{state} (exit {code})"
    rest = [i for i in ids if i not in states]
    used_scontrol = False
    for jid in rest:
        sc = _scontrol(jid)
        if sc is not None:
            used_scontrol = True
            states[jid] = f"{sc[0]} (exit {sc[1]})" if sc[1] else sc[0]
    if used_scontrol:
        sources.append("scontrol")
    if not sources and q is None:
        return {}, "not available (no SLURM commands answered)"
    return states, ", ".join(sources) or "squeue"


def active(ids: List[str]) -> Optional[List[str]]:
    """The ids among ``ids`` that are queued or running; None when squeue is not available."""
    q = _squeue(ids)
    if q is None:
        return None
    return [i for i in ids if q.get(i, "").split()[0:1] and q[i].split()[0] in ACTIVE]


def scancel(ids: List[str]) -> None:
    if not ids:
        return
    if shutil.which("scancel") is None:
        raise NasrunError("scancel not found: cannot cancel jobs " + ", ".join(ids))
    try:
        _run(["scancel", *ids])
    except subprocess.TimeoutExpired:
        raise NasrunError(f"scancel did not answer in {TIMEOUT} s") from None
