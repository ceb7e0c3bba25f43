"""scripts/install.sh: skips what is present, never calls apt-get when MPI comes from the site's
modules, and needs no root when everything is there. (.ci/run runs it from a clean clone.)"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = sys.prefix


def fake_bin(tmp_path, uid=None, mpi_wrappers=False):
    """A bin dir put first on PATH: an apt-get that records its calls and fails, optionally an
    `id` that claims a non-root uid and module-style MPI wrappers."""
    d = tmp_path / "bin"
    d.mkdir()
    marker = tmp_path / "apt-called"
    (d / "apt-get").write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 1\n")
    if uid is not None:
        real_id = shutil.which("id")
        (d / "id").write_text(f"#!/bin/sh\nif [ \"$1\" = -u ]; then echo {uid}; "
                              f"else exec {real_id} \"$@\"; fi\n")
    if mpi_wrappers:
        for tool in ("mpicc", "mpirun"):
            real = shutil.which(tool)
            (d / tool).write_text(f"#!/bin/sh\nexec {real} \"$@\"\n")
    for f in d.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{d}:{os.environ['PATH']}", NASRUN_VENV=VENV)
    return env, marker, d


def run_install(env, *args):
    return subprocess.run(["bash", os.path.join(ROOT, "scripts", "install.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=900)


def test_second_run_skips_everything(tmp_path):
    env, marker, _ = fake_bin(tmp_path)
    p = run_install(env, "--dev")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "system packages present" in p.stdout
    assert "nasrun present" in p.stdout
    assert not marker.exists()


def test_site_mpi_from_modules_is_used_and_apt_is_not_called(tmp_path):
    env, marker, d = fake_bin(tmp_path, mpi_wrappers=True)
    p = run_install(env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"MPI: {d}/mpicc" in p.stdout
    assert not marker.exists()


def test_works_without_root_when_everything_is_present(tmp_path):
    env, marker, _ = fake_bin(tmp_path, uid=1000)
    p = run_install(env, "--dev")
    assert p.returncode == 0, p.stdout + p.stderr
    # nothing was installed: every step reports what it found
    for line in p.stdout.splitlines():
        assert any(w in line for w in ("present", "MPI:", "done in", "kept")), line
    assert not marker.exists()


def test_missing_system_packages_without_root_is_a_clear_error(tmp_path):
    env, marker, d = fake_bin(tmp_path, uid=1000)
    # hide slurm's daemons so that --dev finds something missing
    env["PATH"] = ":".join(p for p in env["PATH"].split(":")
                           if not os.path.exists(os.path.join(p, "slurmctld")))
    if shutil.which("slurmctld", path=env["PATH"]) or not shutil.which("bash", path=env["PATH"]):
        pytest.fail("test setup: could not hide slurmctld from PATH")
    p = run_install(env, "--dev")
    assert p.returncode == 1
    assert "missing system packages" in p.stderr and "slurm-wlm" in p.stderr
    assert not marker.exists()


def test_unknown_option():
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "install.sh"), "--bogus"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "unknown option '--bogus'" in p.stderr
