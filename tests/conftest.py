import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mpi_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def mpirun(np_, args, timeout=150, env=None, cwd=None):
    cmd = ["mpirun", "--oversubscribe", "-np", str(np_), sys.executable] + list(args)
    return subprocess.run(cmd, env=env or mpi_env(), cwd=cwd, timeout=timeout, capture_output=True,
                          text=True)


@pytest.fixture
def digits_spec_text():
    def make(**over):
        d = dict(trials=4, epochs=1, rpt=1, backend="auto", limit="null", extra_res="", extra_obj="")
        d.update(over)
        return f"""
experiment: {{name: t, seed: 0}}
space:
  builtin: chain
  options: {{kind: cnn, max_layers: 2, widths: [8, 16]}}
strategy: {{name: random}}
objective:
  type: train
  dataset: {{name: digits, valid_fraction: 0.25, limit: {d['limit']}}}
  epochs: {d['epochs']}
  batch_size: 64
  optimizer: {{name: adam, lr: 0.01}}
  {d['extra_obj']}
budget: {{max_trials: {d['trials']}}}
resources: {{ranks_per_trial: {d['rpt']}, backend: {d['backend']},
             max_consecutive_failures: 3 {d['extra_res']}}}
"""
    return make
