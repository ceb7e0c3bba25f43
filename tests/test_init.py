"""nasrun init: the starter spec and the shipped examples, package data read through
importlib.resources (one copy: configs/ and slurm/nasrun-job.sh in the repository are links)."""
import os

from click.testing import CliRunner

from nasrun.cli import main
from nasrun.slurm.render import DEFAULT_TEMPLATE, shipped_template
from nasrun.spec import load_spec
from nasrun.spec.preflight import preflight
from nasrun.starter import example_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "nasrun")


def init(*args):
    return CliRunner().invoke(main, ["init", *args])


def test_the_repository_paths_are_the_package_files():
    assert os.path.realpath(os.path.join(ROOT, "configs")) == os.path.join(PACKAGE, "configs")
    assert os.path.realpath(os.path.join(ROOT, "slurm", "nasrun-job.sh")) == \
        os.path.join(PACKAGE, "slurm", "nasrun-job.sh") == DEFAULT_TEMPLATE
    with open(DEFAULT_TEMPLATE, encoding="utf-8") as f:
        assert shipped_template() == f.read()


def test_starter_is_written_once_and_validates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = init()
    assert r.exit_code == 0, r.output
    assert r.output == "wrote nasrun.yaml; check it with: nasrun validate nasrun.yaml\n"
    spec = load_spec("nasrun.yaml")
    preflight(spec, "nasrun.yaml")
    assert spec.experiment.name == "my-search"
    r = init()
    assert r.exit_code == 2 and "nasrun.yaml exists; use --force" in r.output
    (tmp_path / "nasrun.yaml").write_text("changed")
    assert init("--force").exit_code == 0 and (tmp_path / "nasrun.yaml").read_text().startswith("# nasrun")


def test_list_names_every_shipped_example_with_its_first_sentence():
    shipped = sorted(n[:-5] for n in os.listdir(os.path.join(PACKAGE, "configs")) if n.endswith(".yaml"))
    assert example_names() == shipped and "default" in shipped
    r = init("--list")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == shipped
    assert "NAS-Bench-201 on CIFAR-10 by table lookup" in lines[shipped.index("nb201-tabular")]
    assert lines[-1].startswith("write one with: nasrun init --example ")


def test_every_example_is_written_as_shipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in example_names():
        r = init("--example", name)
        assert r.exit_code == 0, r.output
        assert r.output == f"wrote {name}.yaml; check it with: nasrun validate {name}.yaml\n"
        with open(os.path.join(ROOT, "configs", f"{name}.yaml"), encoding="utf-8") as f:
            assert (tmp_path / f"{name}.yaml").read_text() == f.read()
    assert init("--example", "default", "sub.yaml").exit_code == 0
    assert load_spec("sub.yaml").experiment.name == "digits-default"


def test_an_unknown_example_names_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = init("--example", "defualt")
    assert r.exit_code == 2 and not os.listdir(tmp_path)
    assert "no example named 'defualt' (did you mean 'default'?)" in r.output
    assert ", ".join(example_names()) in r.output and "Traceback" not in r.output
