"""The package's shape: every family module registers through its package, and the README names what exists."""

import json
import pkgutil
import re
import subprocess
import sys

import nnctl.data
import nnctl.layers
from helpers import REPO
from nnctl.data import DATASETS
from nnctl.layers import LAYERS
from nnctl.losses import LOSSES
from nnctl.optim import OPTIMIZERS

HELPERS = {
    "nnctl.layers.base": "the Layer contract and the LAYERS registry",
    "nnctl.layers.window": "window geometry, im2col and col2im for conv and pool",
    "nnctl.data.dataset": "the Split and Dataset a source hands to the runner",
    "nnctl.data.source": "the DatasetSource base class and the DATASETS registry",
    "nnctl.data.idx": "the IDX file reader mnist uses",
    "nnctl.data.download": "download with checksum and cache",
    "nnctl.data.inputs": "reading new inputs for predict",
    "nnctl.data.augment": "random shifts and flips of training batches",
    "nnctl.data.boolean_trees": "the generator script of the shipped tree task",
}
"""Modules under layers/ and data/ that register nothing, and why."""

REGISTERED_BY_MODULE = """
import json
from nnctl.data import DATASETS
from nnctl.layers import LAYERS
found = {}
for registry in (LAYERS, DATASETS):
    for name in registry:
        found.setdefault(registry.get(name).__module__, []).append(name)
print(json.dumps(found))
"""


def test_every_family_module_registers_when_its_package_is_imported():
    """A family module the package forgets to import would make its layers 'unknown': a fresh interpreter that
    imports only the packages must find something registered from each module that is not a known helper."""
    modules = {f"{package.__name__}.{info.name}" for package in (nnctl.layers, nnctl.data)
               for info in pkgutil.iter_modules(package.__path__)}
    assert set(HELPERS) <= modules, f"helpers listed that no longer exist: {set(HELPERS) - modules}"
    result = subprocess.run([sys.executable, "-c", REGISTERED_BY_MODULE], capture_output=True, text=True, check=True)
    registered = json.loads(result.stdout)
    silent = sorted(modules - set(HELPERS) - set(registered))
    assert not silent, (f"{silent} register nothing when nnctl.layers and nnctl.data are imported: import them in "
                        "their package's __init__.py, or list them in HELPERS with the reason")
    assert not set(HELPERS) & set(registered), "a module listed as a helper registers something"


def readme_tables(text: str) -> dict[str, set[str]]:
    """The names in backticks in the first column of every README table, by the table's first header."""
    names: dict[str, set[str]] = {}
    header = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        first = line.split("|")[1].strip()
        if header is None:
            header = first
            names.setdefault(header, set())
        elif not first.startswith("---"):
            names[header] |= set(re.findall(r"`([^`]+)`", first))
    return names


def test_the_readme_tables_name_exactly_what_the_registries_hold():
    tables = readme_tables((REPO / "README.md").read_text())
    for header, registry in (("layer", LAYERS), ("loss", LOSSES), ("optimizer", OPTIMIZERS), ("dataset", DATASETS)):
        assert tables.get(header) == set(registry), (
            f"README tables headed '{header}': missing {sorted(set(registry) - tables.get(header, set()))}, "
            f"not registered {sorted(tables.get(header, set()) - set(registry))}")


def test_ci_runs_the_readmes_test_command_exactly():
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("# 2. "):readme.index("```", readme.index("# 2. "))]
    (command,) = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert command in (REPO / ".ci" / "run").read_text().splitlines()
    assert "ruff check" in command and "mypy nnctl" in command
    assert command.index("ruff") < command.index("pytest"), "ruff runs before the tests"
    assert '-m "not slow"' in command and "-m slow" in command
