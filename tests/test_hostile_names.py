"""Names that become paths (run, sweep, member, layer) cannot leave the folder they belong in."""

import textwrap
from pathlib import Path

import pytest
import yaml
from hostile import XOR, clean_error, listing

from helpers import nnctl
from nnctl.config import Config, apply_overrides, from_dict, load_config
from nnctl.errors import ConfigError
from nnctl.experiment import build
from nnctl.sweep import Sweep

TRAVERSALS = ["../../escaped", "/tmp/escaped_abs", "a/b", "..", "a..b", ".hidden", "a\\b", "x" * 300, ""]


def sweep_file(folder: Path, name: str | None = None, member: str | None = None) -> Path:
    base = yaml.safe_load(XOR)
    spec = {"base": base, "grid": {"optimizer.lr": [0.1]}}
    if name is not None:
        spec["name"] = name
    if member is not None:
        spec["members"] = [{"name": member}]
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("name", TRAVERSALS[:-1])
def test_a_sweep_name_cannot_leave_the_runs_folder(tmp_path, name):
    with pytest.raises(ConfigError, match="cannot name the sweep's directory"):
        Sweep(sweep_file(tmp_path, name=name), tmp_path / "runs")


@pytest.mark.parametrize("name", TRAVERSALS[:5])
def test_a_member_name_cannot_leave_the_sweep_folder(tmp_path, name):
    with pytest.raises(ConfigError, match="cannot name a run directory"):
        Sweep(sweep_file(tmp_path, member=name), tmp_path / "runs")


def checked(data: dict, base_dir) -> Config:
    config = from_dict(data, "c.yaml", base_dir=base_dir)
    apply_overrides(config, [])
    return config


@pytest.mark.parametrize("name", TRAVERSALS)
def test_a_run_name_cannot_leave_the_runs_folder(tmp_path, name):
    (tmp_path / "c.yaml").write_text(XOR.replace("name: xor", f"name: '{name}'"))
    with pytest.raises(ConfigError, match="cannot name a run directory"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize("name", TRAVERSALS[:6])
def test_a_layer_name_cannot_become_a_path_in_an_export(tmp_path, name):
    data = yaml.safe_load(XOR)
    data["model"]["layers"][0]["name"] = name
    with pytest.raises(ConfigError, match="cannot name a layer"):
        build(checked(data, tmp_path))


@pytest.mark.slow
def test_the_sweep_command_writes_nothing_outside_runs(tmp_path):
    outside = tmp_path / "work"
    outside.mkdir()
    path = sweep_file(outside, name="../../escaped_sweep")
    before = listing(tmp_path)
    clean_error(nnctl("sweep", str(path), "--runs-dir", "runs", cwd=outside), 2, "cannot name the sweep's directory",
                "../../escaped_sweep")
    assert listing(tmp_path) == before
    assert not (tmp_path.parent / "escaped_sweep").exists()


def test_good_names_still_work(tmp_path):
    path = sweep_file(tmp_path, name="fine_name-1.0", member="m.1")
    sweep = Sweep(path, tmp_path / "runs")
    assert sweep.dir == tmp_path / "runs" / "fine_name-1.0"
    assert [m.label for m in sweep.members] == ["m.1_0.1"]
    data = yaml.safe_load(textwrap.dedent(XOR))
    data["model"]["layers"][0]["name"] = "hidden.1"
    assert build(checked(data, tmp_path)).model.layers[0].name == "hidden.1"
