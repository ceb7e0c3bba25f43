"""SLURM batch jobs: render the script (:mod:`.render`), submit and query (:mod:`.scheduler`),
and the job chain kept next to the experiment (:mod:`.chain`)."""
from .render import DEFAULT_TEMPLATE, JobPaths, quote, render

__all__ = ["DEFAULT_TEMPLATE", "JobPaths", "quote", "render"]
