"""The batch script as text: golden files, every option in --dry-run, hostile values, validation."""
from __future__ import annotations

import os
import stat
import subprocess

import pytest
from slurm_support import REPO, nasrun, write_spec

from nasrun.errors import SpecError
from nasrun.slurm.render import DEFAULT_TEMPLATE, JobPaths, render
from nasrun.spec import parse_spec
from nasrun.spec.slurm import parse_time, sbatch_literal_problem

GOLDEN = os.path.join(REPO, "tests", "golden")
PATHS = JobPaths(spec="/home/u/nas/spec.yaml", experiment_dir="/home/u/nas/runs/exp",
                 workdir="/home/u/nas", script="/home/u/nas/runs/exp/slurm/job.sh")
BASE = "experiment: {name: exp}\nspace: {builtin: chain}\n"

CASES = {
    "defaults": "",
    "gpus-modules-env": """slurm:
  partition: gpu
  account: proj-42
  qos: high
  nodes: 2
  tasks_per_node: 4
  cpus_per_task: 8
  gpus_per_node: 4
  mem: 64G
  time: "2-00:00:00"
  signal_lead: 300
  max_resubmits: 10
  modules: [openmpi/4.1.4, cuda/12.1]
  env: {OMP_NUM_THREADS: "8", NCCL_DEBUG: WARN}
  extra_sbatch: ["--constraint=a100", "--exclusive"]
""",
    "mpirun": """slurm:
  launcher: mpirun
  launcher_args: [--bind-to, none]
  python: /opt/venv/bin/python
  time: "30"
  signal_lead: 60
""",
    "container": """slurm:
  gres: "gpu:a100:2"
  container: /images/nasrun.sif
  container_runtime: singularity
  binds: [/data, "/scratch/u:/scratch"]
""",
}


def rendered(case: str) -> str:
    spec = parse_spec(BASE + CASES[case])
    with open(DEFAULT_TEMPLATE) as f:
        template = f.read()
    return render(spec.slurm, job_name=spec.slurm.job_name or spec.experiment.name, paths=PATHS,
                  template=template)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_script_matches_golden_file(case):
    path = os.path.join(GOLDEN, f"{case}.sh")
    text = rendered(case)
    if os.environ.get("NASRUN_UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read(), f"rendered script differs from {path} (NASRUN_UPDATE_GOLDEN=1 rewrites it)"
    assert subprocess.run(["bash", "-n", path], timeout=10).returncode == 0


def test_render_is_pure():
    assert rendered("container") == rendered("container")


def test_time_formats():
    assert parse_time("30") == 1800
    assert parse_time("45:30") == 45 * 60 + 30
    assert parse_time("01:00:00") == 3600
    assert parse_time("2-00") == 2 * 86400
    assert parse_time("1-02:03") == 86400 + 2 * 3600 + 3 * 60
    assert parse_time("1-02:03:04") == 86400 + 2 * 3600 + 3 * 60 + 4
    for bad in ("", "1h", "1:2:3:4", "-5", "0", "1-", "a:b"):
        with pytest.raises(ValueError):
            parse_time(bad)


@pytest.mark.parametrize("slurm, path", [
    ('job_name: "a\\nb"', "slurm.job_name"),
    ('job_name: "a\\rb"', "slurm.job_name"),
    ('partition: "gpu; rm -rf ~"', "slurm.partition"),
    ('partition: "gpu\\n#SBATCH --account=x"', "slurm.partition"),
    ('account: "$(id)"', "slurm.account"),
    ('qos: "a b"', "slurm.qos"),
    ('gres: "gpu:1;x"', "slurm.gres"),
    ('mem: "4 GB"', "slurm.mem"),
    ('mem: "`id`"', "slurm.mem"),
    ('time: "1h"', "slurm.time"),
    ('time: 1:30:00', "slurm.time"),
    ('time: "2"\n  signal_lead: 120', "slurm.signal_lead"),
    ('modules: ["cuda; touch x"]', "slurm.modules[0]"),
    ('modules: ["$(touch x)"]', "slurm.modules[0]"),
    ('env: {"A B": x}', "slurm.env.A B"),
    ('env: {"X=$(id)": x}', "slurm.env.X=$(id)"),
    ('env: {A: "line\\nbreak"}', "slurm.env.A"),
    ('env: {NASRUN_SLURM_RESUBMIT: "0"}', "slurm.env.NASRUN_SLURM_RESUBMIT"),
    ('extra_sbatch: ["constraint=a100"]', "slurm.extra_sbatch[0]"),
    ('extra_sbatch: ["--x\\n--y"]', "slurm.extra_sbatch[0]"),
    ('extra_sbatch: ["--signal=USR2@60"]', "slurm.extra_sbatch[0]"),
    ('extra_sbatch: ["--output=/tmp/x"]', "slurm.extra_sbatch[0]"),
    ('extra_sbatch: ["--constraint=a100", "--comment=a --export=NONE --signal=B:USR2@100"]',
     "slurm.extra_sbatch[1]"),
    ('extra_sbatch: ["--array=1-4"]', "slurm.extra_sbatch[0]"),
    ('extra_sbatch: ["--sig=B:USR2@100"]', "slurm.extra_sbatch[0]"),
    ('job_name: "a b"', "slurm.job_name"),
    ("job_name: \"it's\"", "slurm.job_name"),
    ('time: " 30"', "slurm.time"),
    ('launcher: slurm', "slurm.launcher"),
    ('mpi: "pmix --x"', "slurm.mpi"),
    ('launcher_args: ["a\\nb"]', "slurm.launcher_args[0]"),
    ('container: "a\\nb"', "slurm.container"),
    ('binds: [/data]', "slurm.binds"),
    ('container: x.sif\n  binds: ["a\\nb"]', "slurm.binds[0]"),
    ('python: "py\\nthon"', "slurm.python"),
    ('max_resubmits: -1', "slurm.max_resubmits"),
    ('nodes: 0', "slurm.nodes"),
    ('tasks_per_node: 1.5', "slurm.tasks_per_node"),
])
def test_unsafe_or_malformed_values_are_rejected_with_their_key_path(slurm, path):
    with pytest.raises(SpecError) as e:
        parse_spec(BASE + "slurm:\n  " + slurm + "\n", "s.yaml")
    assert e.value.path == path, str(e.value)
    assert str(e.value).startswith("s.yaml:")


def _dry_run(tmp_path, slurm_lines, *args):
    spec = write_spec(str(tmp_path / "spec.yaml"), "exp", slurm_lines)
    env = dict(os.environ, PYTHONPATH=REPO)
    return nasrun(["submit", "--dry-run", *args, spec], cwd=str(tmp_path), env=env)


def test_dry_run_shows_every_option_and_submits_nothing(tmp_path):
    p = _dry_run(tmp_path, [
        "job_name: my-job", "partition: gpu", "account: proj", "qos: normal", "nodes: 2",
        "tasks_per_node: 4", "cpus_per_task: 7", "gpus_per_node: 2", "gres: 'gpu:2'", "mem: 4000M",
        'time: "1-00:00:00"', "signal_lead: 240", "max_resubmits: 9", "launcher: mpirun",
        "launcher_args: [--oversubscribe]", "modules: [cuda/12.1]", "env: {FOO: bar}",
        "extra_sbatch: ['--constraint=a100']", "container: img.sif", "binds: [/data]",
    ])
    out = p.stdout
    exp = str(tmp_path / "runs" / "exp")
    for line in ["#SBATCH --job-name=my-job", "#SBATCH --partition=gpu", "#SBATCH --account=proj",
                 "#SBATCH --qos=normal", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4",
                 "#SBATCH --cpus-per-task=7", "#SBATCH --gpus-per-node=2", "#SBATCH --gres=gpu:2",
                 "#SBATCH --mem=4000M", "#SBATCH --time=1-00:00:00", "#SBATCH --signal=B:USR1@240",
                 f"#SBATCH --output={exp}/slurm/%j.out", "#SBATCH --constraint=a100",
                 "NASRUN_SLURM_MAX_RESUBMITS=9", "export FOO=bar",
                 "module load cuda/12.1 || { echo 'nasrun: module load failed' >&2; exit 1; }",
                 f"NASRUN_SLURM_SPEC={tmp_path}/spec.yaml", f"NASRUN_SLURM_DIR={exp}",
                 f"NASRUN_SLURM_WORKDIR={tmp_path}",
                 'NASRUN_SLURM_NASRUN=(mpirun -np "$SLURM_NTASKS" --oversubscribe apptainer exec --nv '
                 '--bind /data img.sif nasrun)',
                 f"# would write {exp}/slurm/job.sh and run: sbatch --parsable "
                 f"--export=ALL,NASRUN_SLURM_RESUBMIT=0 {exp}/slurm/job.sh"]:
        assert line in out.splitlines(), line
    assert not os.path.exists(exp), "--dry-run must not write anything"


def test_dry_run_python_option_and_default_job_name(tmp_path):
    out = _dry_run(tmp_path, ["python: /spec/python"], "--python", "/usr/bin/python3").stdout
    assert "#SBATCH --job-name=exp" in out.splitlines()
    assert "NASRUN_SLURM_NASRUN=(srun --mpi=pmix /usr/bin/python3 -m nasrun)" in out.splitlines()
    out = _dry_run(tmp_path, ["python: /spec/py thon"]).stdout
    assert "NASRUN_SLURM_NASRUN=(srun --mpi=pmix '/spec/py thon' -m nasrun)" in out.splitlines()


def test_own_template_and_unknown_placeholder(tmp_path):
    t = tmp_path / "mine.sh"
    t.write_text("#!/bin/bash\n{{ sbatch }}\necho {{ job_name }} {{spec}}\n")
    out = _dry_run(tmp_path, ["job_name: 'a;b'"], "--template", str(t)).stdout
    assert "#SBATCH --job-name=a;b" in out.splitlines()  # sbatch's parser: no quoting there
    assert f"echo 'a;b' {tmp_path}/spec.yaml" in out  # the shell's: quoted
    t.write_text("{{ nope }}\n")
    spec = str(tmp_path / "spec.yaml")
    p = nasrun(["submit", "--dry-run", "--template", str(t), spec], cwd=str(tmp_path),
               env=dict(os.environ, PYTHONPATH=REPO), check=False)
    assert p.returncode == 2 and "unknown placeholder {{ nope }}" in p.stderr and "Traceback" not in p.stderr


def test_bad_spec_value_fails_submit_with_key_path(tmp_path):
    spec = write_spec(str(tmp_path / "spec.yaml"), "exp", ['partition: "a;b"'])
    p = nasrun(["submit", "--dry-run", spec], cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=REPO),
               check=False)
    assert p.returncode == 2 and "slurm.partition" in p.stderr and "Traceback" not in p.stderr


HOSTILE = [
    "$(touch canary)", "`touch canary`", "x; touch canary", "x' ; touch canary; '", 'x" ; touch canary; "',
    "x && touch canary", "x | touch canary", "$(touch${IFS}canary)", "x > canary", "\\$(touch canary)",
    # no space, quote, backslash or '#': these may go into #SBATCH lines too (job name, log path)
    "x;touch${IFS}canary", "`touch${IFS}canary`", "x&&touch${IFS}canary", "x|touch${IFS}canary", "x>canary",
]

FAKE = """#!/bin/bash
# records how it was called: one argument per line, then the environment variable WEIRD
{ printf '%s\\n' "$(basename "$0")" "$@"; printf 'WEIRD=%s\\n' "${WEIRD-unset}"; } >> "$CALLS"
exit 0
"""


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_do_not_run_when_the_script_runs(tmp_path, value):
    """Render with hostile job name, env value, module-free paths; run the whole script with bash
    against fake srun/sbatch/module commands in a sandbox; no canary may appear."""
    sandbox = tmp_path / value.replace("/", "_")[:20]
    sandbox.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("srun", "sbatch", "module", "apptainer"):
        f = bin_dir / name
        f.write_text(FAKE)
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    spec = parse_spec(BASE + "slurm:\n  container: img.sif\n  launcher_args: [--label]\n")
    s = spec.slurm
    import dataclasses
    s = dataclasses.replace(s, env={"WEIRD": value}, launcher_args=[value], binds=[value], container=value)
    with open(DEFAULT_TEMPLATE) as f:
        template = f.read()
    # the job name and the experiment directory also go into #SBATCH lines, unquoted: only values
    # that sbatch reads literally may; the others are refused, never quoted there
    literal = sbatch_literal_problem(value) is None
    job_name = value if literal else "job"
    exp = str(sandbox / value.replace("/", "_"))
    paths = JobPaths(spec=str(sandbox / (value.replace("/", "_") + ".yaml")), experiment_dir=exp,
                     workdir=str(sandbox), script=str(sandbox / "job.sh"))
    if not literal:
        for name, p in ((value, dataclasses.replace(paths, experiment_dir=str(tmp_path / "exp"))),
                        ("job", paths)):
            with pytest.raises(ValueError, match="cannot go into an #SBATCH line"):
                render(s, job_name=name, paths=p, template=template, python=value)
        paths = dataclasses.replace(paths, experiment_dir=str(tmp_path / "exp"))
    text = render(s, job_name=job_name, paths=paths, template=template, python=value)
    script = tmp_path / "job.sh"
    script.write_text(text)
    calls = tmp_path / "calls.txt"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), "SLURM_JOB_ID": "7", "SLURM_NTASKS": "3",
           "HOME": str(tmp_path)}
    p = subprocess.run(["bash", str(script)], cwd=str(sandbox), env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    for d in (tmp_path, sandbox, sandbox.parent):
        assert not (d / "canary").exists(), f"injection worked with {value!r}"
    lines = calls.read_text().splitlines()
    assert lines == ["srun", "--mpi=pmix", value, "apptainer", "exec", "--bind", value, value, value,
                     "-m", "nasrun", "run", paths.spec, f"WEIRD={value}"]
    assert f"({job_name})" in p.stdout  # the job name printed literally
    if literal:
        assert f"#SBATCH --job-name={value}" in text.splitlines()
        assert f"#SBATCH --output={exp}/slurm/%j.out" in text.splitlines()


def test_control_characters_in_paths_are_refused(tmp_path):
    spec = parse_spec(BASE)
    paths = JobPaths(spec="/a\nb/spec.yaml", experiment_dir="/x", workdir="/x", script="/x/job.sh")
    with pytest.raises(ValueError):
        render(spec.slurm, job_name="x", paths=paths, template="{{ spec }}")


def test_resume_of_a_function_objective_confirms_the_function_and_logs_append():
    spec = parse_spec(BASE + CASES["defaults"])
    with open(DEFAULT_TEMPLATE) as f:
        template = f.read()
    text = render(spec.slurm, job_name="x", paths=PATHS, template=template,
                  objective_function="my_objectives:score")
    assert 'set -- resume "$NASRUN_SLURM_DIR" --objective my_objectives:score\n' in text
    assert "#SBATCH --open-mode=append\n" in text
    plain = render(spec.slurm, job_name="x", paths=PATHS, template=template)
    assert 'set -- resume "$NASRUN_SLURM_DIR"\n' in plain


SMUGGLED = [  # (slurm line, key path, words the message must contain)
    ('extra_sbatch: ["--comment=a --export=NONE --signal=B:USR2@100"]', "slurm.extra_sbatch[0]",
     "as several options"),
    ('extra_sbatch: ["--exclusive", "--array=1-4"]', "slurm.extra_sbatch[1]", "--array is set by nasrun"),
    ('extra_sbatch: ["-a 1-4"]', "slurm.extra_sbatch[0]", "short form of --array"),
    ('extra_sbatch: ["-J", "x"]', "slurm.extra_sbatch[0]", "set that key instead"),
    ('extra_sbatch: ["-Ca100"]', "slurm.extra_sbatch[0]", "'--constraint=value'"),
    ('extra_sbatch: ["--dep=afterok:1"]', "slurm.extra_sbatch[0]", "abbreviation of --dependency"),
    ('extra_sbatch: ["--no-req"]', "slurm.extra_sbatch[0]", "abbreviation of --no-requeue"),
    ('extra_sbatch: ["--export-file=/tmp/env"]', "slurm.extra_sbatch[0]", "NASRUN_SLURM_RESUBMIT"),
    ('extra_sbatch: ["--partition=gpu"]', "slurm.extra_sbatch[0]", "slurm.partition"),
    ('extra_sbatch: ["--open-mode=truncate"]', "slurm.extra_sbatch[0]", "set by nasrun submit"),
    ("extra_sbatch: [\"--comment='a'\"]", "slurm.extra_sbatch[0]", "a quote"),
    ('extra_sbatch: ["--comment=a\\\\b"]', "slurm.extra_sbatch[0]", "a backslash"),
    ('extra_sbatch: ["--comment=a#b"]', "slurm.extra_sbatch[0]", "'#'"),
    ('job_name: "my job"', "slurm.job_name", "whitespace"),
    ("job_name: \"it's\"", "slurm.job_name", "a quote"),
    ('job_name: "a\\\\b"', "slurm.job_name", "a backslash"),
    ('job_name: "x#y"', "slurm.job_name", "'#'"),
    ('job_name: "caf\\u00e9"', "slurm.job_name", "non-ASCII"),
    ('time: "30 "', "slurm.time", "whitespace"),
]


@pytest.mark.parametrize("command", ["validate", "submit"])
@pytest.mark.parametrize("line, path, words", SMUGGLED)
def test_what_sbatch_would_not_read_as_one_literal_option_is_refused(tmp_path, command, line, path, words):
    """Exit 2, the file and the key path, no traceback: sbatch would split an #SBATCH line at
    whitespace into several options, strip quotes and backslashes and stop at '#'."""
    spec = write_spec(str(tmp_path / "spec.yaml"), "exp", [line])
    args = ["validate", spec] if command == "validate" else ["submit", "--dry-run", spec]
    p = nasrun(args, cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=REPO), check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"{spec}:" in p.stderr and f"{path}:" in p.stderr and words in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "#SBATCH" not in p.stdout
    assert os.listdir(tmp_path) == ["spec.yaml"]


def test_extra_options_that_are_one_literal_option_go_in_as_they_are(tmp_path):
    opts = ["--gpus=2", "--ntasks=4", "--time-min=10", "--mem-per-cpu=1G", "--constraint=a100&nvme",
            "--exclusive", "--comment=a,b;$(x)`y`|<>", "--mail-type=END,FAIL"]
    out = _dry_run(tmp_path, [f"extra_sbatch: {opts!r}"]).stdout.splitlines()
    for o in opts:
        assert f"#SBATCH {o}" in out


def test_experiment_directory_that_sbatch_cannot_take_is_refused_and_percent_is_escaped(tmp_path):
    spec = str(tmp_path / "spec.yaml")
    with open(spec, "w") as f:
        f.write("experiment: {name: exp, output_dir: 'my runs/exp'}\nspace: {builtin: chain}\n")
    p = nasrun(["submit", "--dry-run", spec], cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=REPO),
               check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"{spec}:" in p.stderr and "experiment.output_dir" in p.stderr and "whitespace" in p.stderr
    # '%' starts a filename pattern in --output (%j is the job id): a literal one is written '%%'
    paths = JobPaths(spec="/a/spec.yaml", experiment_dir="/a/100%/exp", workdir="/a", script="/a/job.sh")
    text = render(parse_spec(BASE).slurm, job_name="x", paths=paths, template="{{ sbatch }}")
    assert "#SBATCH --output=/a/100%%/exp/slurm/%j.out" in text.splitlines()
