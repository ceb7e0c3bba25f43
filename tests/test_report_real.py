"""`nasrun report` on experiments that nasrun itself ran: the NAS-Bench-201 table objective (fast,
in one process) and a real 3-rank MPI training run."""
import os
import subprocess
import sys

import pytest
from conftest import REPO, mpi_env, mpirun
from test_report import PLOTS, check_csv_matches_hdf5, check_png, report

NB201 = os.path.join(os.path.dirname(REPO), "shared", "benchmarks", "nb201")


def run_nasrun(args, cwd, timeout=300):
    p = subprocess.run([sys.executable, "-m", "nasrun", *args], cwd=cwd, env=mpi_env(), capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def test_report_of_a_tabular_run(tmp_path):
    (tmp_path / "spec.yaml").write_text(f"""
experiment: {{name: nb201-report, seed: 1, output_dir: {tmp_path / 'run'}}}
space: {{builtin: nb201}}
strategy: {{name: evolution, options: {{population_size: 10, sample_size: 3}}}}
objective: {{type: table, path: {NB201}}}
budget: {{max_trials: 40}}
""")
    run_nasrun(["run", "spec.yaml"], cwd=str(tmp_path))  # one process: rank 0 also evaluates
    out = tmp_path / "report"
    r = report(tmp_path / "run", "--out", out, "--html")
    assert r.exit_code == 0, r.output
    # the table gives no learning curves and no model sizes: those two plots are skipped, said so
    assert "learning_curves.png skipped" in r.output and "pareto.png skipped" in r.output
    for name in PLOTS[:4]:
        check_png(out / name)
    rows = check_csv_matches_hdf5(tmp_path / "run", out)
    assert len(rows) == 40 and all(r["status"] == "done" for r in rows)
    assert max(float(r["metric"]) for r in rows) > 85.0  # real NB201 valid accuracies, in percent


@pytest.mark.mpi
def test_report_of_a_real_mpi_run(tmp_path):
    (tmp_path / "spec.yaml").write_text(f"""
experiment: {{name: mpi-report, seed: 0, output_dir: {tmp_path / 'run'}}}
space:
  builtin: chain
  options: {{kind: cnn, max_layers: 2, widths: [8, 16]}}
strategy: {{name: random}}
objective: {{type: train, dataset: {{name: digits, valid_fraction: 0.25}}, epochs: 2, batch_size: 64,
            optimizer: {{name: adam, lr: 0.01}}}}
budget: {{max_trials: 4}}
""")
    p = mpirun(3, ["-m", "nasrun", "run", str(tmp_path / "spec.yaml")], timeout=150, cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    out = tmp_path / "report"
    r = report(tmp_path / "run", "--out", out)
    assert r.exit_code == 0, r.output
    for name in PLOTS:  # training records curves and sizes: every plot is drawn
        check_png(out / name)
    rows = check_csv_matches_hdf5(tmp_path / "run", out)
    assert len(rows) == 4 and {r["group"] for r in rows} == {"0", "1"}
