"""The ``slurm`` section of a spec: what ``nasrun submit`` puts in the batch script."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Literal, Optional

from .fields import field


@dataclass(frozen=True)
class SlurmSpec:
    job_name: Optional[str] = None  # default: the experiment's name
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    nodes: int = field(1, min=1)
    tasks_per_node: int = field(3, min=1)
    cpus_per_task: int = field(1, min=1)
    gpus_per_node: int = field(0, min=0)
    gres: Optional[str] = None
    mem: Optional[str] = None
    time: str = "01:00:00"
    signal_lead: int = field(120, min=10)  # seconds before the time limit that SLURM signals the job
    max_resubmits: int = field(5, min=0)
    launcher: Literal["srun", "mpirun"] = "srun"
    modules: List[str] = field([])
    env: Dict[str, str] = field({})
    extra_sbatch: List[str] = field([])
    container: Optional[str] = None
    container_runtime: Literal["apptainer", "singularity"] = "apptainer"
    binds: List[str] = field([])
    template: Optional[str] = None
