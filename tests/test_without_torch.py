"""A login node without PyTorch, MPI or Horovod: validate, init, submit --dry-run, status, jobs,
cancel and report work with torch, mpi4py and horovod unimportable (strategy options come from
the declarations in nasrun.strategies.registry, not from the implementations)."""
import os
import subprocess
import sys

import pytest

from nasrun.slurm import chain
from nasrun.store import open_store
from nasrun.store.sample import sample_records, write_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKED = ("torch", "mpi4py", "horovod")
# a finder first on sys.meta_path makes `import torch` (and `import torch.nn`) raise
# ModuleNotFoundError, as on a machine without them; unlike a None entry in sys.modules it leaves
# `"torch" in sys.modules` False, which libraries (scipy's array-API layer) read as "not loaded"
BLOCKER = (f"import sys\nclass Blocked:\n    def find_spec(self, name, path=None, target=None):\n"
           f"        if name.partition('.')[0] in {BLOCKED!r}:\n"
           f"            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)\n"
           f"sys.meta_path.insert(0, Blocked())\n")
PRELUDE = BLOCKER + "from nasrun.cli import main\nmain(prog_name='nasrun')\n"


@pytest.fixture
def cli(tmp_path):
    """nasrun in a subprocess without torch/mpi4py/horovod; a scancel that succeeds on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scancel").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "scancel").chmod(0o755)
    env = dict(os.environ, PYTHONPATH=ROOT, PATH=f"{bin_dir}:{os.path.dirname(sys.executable)}:/usr/bin:/bin")
    work = tmp_path / "work"
    work.mkdir()

    def run(*args):
        p = subprocess.run([sys.executable, "-c", PRELUDE, *args], cwd=work, env=env,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"nasrun {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
        return p.stdout
    run.dir = work
    return run


def test_the_blocking_works(cli):
    for module in BLOCKED:
        p = subprocess.run([sys.executable, "-c", BLOCKER + f"import {module}\n"], capture_output=True,
                           text=True)
        assert p.returncode == 1 and f"No module named '{module}'" in p.stderr


def test_spec_commands_without_torch(cli):
    assert "wrote nasrun.yaml" in cli("init")
    assert "default" in cli("init", "--list")
    cli("init", "--example", "default")
    cli("init", "--example", "joint-nas-hpo")
    for spec in ("nasrun.yaml", "default.yaml", "joint-nas-hpo.yaml"):
        assert cli("validate", spec).startswith(f"{spec}: valid")
    # rl (numpy only now) is built by validate; a typo in its options is named with a suggestion
    text = (cli.dir / "default.yaml").read_text()
    strategy = "strategy:\n  name: evolution\n  options:\n    population_size: 8\n    sample_size: 3\n"
    assert strategy in text
    (cli.dir / "rl.yaml").write_text(text.replace(strategy, "strategy:\n  name: rl\n  options: {bins: 4}\n"))
    assert "strategy    rl bins=4" in cli("validate", "rl.yaml")
    (cli.dir / "bad.yaml").write_text(text.replace(strategy, "strategy:\n  name: rl\n  options: {bin: 4}\n"))
    p = subprocess.run([sys.executable, "-c", PRELUDE, "validate", "bad.yaml"], cwd=cli.dir,
                       env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True)
    assert p.returncode == 2 and "strategy.options.bin" in p.stderr and "did you mean 'bins'" in p.stderr
    out = cli("submit", "--dry-run", "default.yaml")
    assert "#SBATCH --nodes=1" in out and "# would write" in out


def test_experiment_commands_without_torch(cli):
    exp = str(cli.dir / "runs" / "sample")
    write_experiment(open_store(exp, 2), sample_records(8, step=2), jobs=["10"])
    assert "trials: 4 of 12 finished" in cli("status", exp)
    assert "wrote" in cli("report", exp)
    chain.append_event(exp, "submitted", "10", 0)
    assert "10" in cli("jobs", exp)
    assert "cancelled 10" in cli("cancel", exp)
