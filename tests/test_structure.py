"""The package's shape: every family module registers through its package, and the README names what exists."""

import json
import pkgutil
import subprocess
import sys

import nnctl.data
import nnctl.layers

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
