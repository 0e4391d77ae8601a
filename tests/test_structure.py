"""The package's shape: every family module registers through its package, the README names what exists, and
pyproject.toml declares what the package imports."""

import ast
import json
import pkgutil
import re
import subprocess
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

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
    "nnctl.data.npyfile": "the .npy/.npz reader that checks headers against the bytes before allocating",
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


def test_the_readme_layout_names_every_module():
    """A newcomer's map: each module of nnctl/ in the Layout table, as `name.py` (a data source by its name); a
    subpackage's kernels under `kernels/`."""
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("\n## Layout"):]
    named = set(re.findall(r"`([\w/.]+)`", layout))
    package = REPO / "nnctl"
    missing = []
    for path in sorted(package.rglob("*.py")):
        inner = path.relative_to(package)
        if path.name == "__init__.py" or inner.parts[0] == "kernels":
            continue
        names = {path.name} if len(inner.parts) == 1 else {path.name, path.stem, inner.as_posix()}
        if not names & named:
            missing.append(inner.as_posix())
    assert "kernels/" in layout and not missing, f"README's Layout does not name {missing}"


def test_ci_runs_the_readmes_test_command_exactly():
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("# 2. "):readme.index("```", readme.index("# 2. "))]
    (command,) = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert command in (REPO / ".ci" / "run").read_text().splitlines()
    assert "ruff check" in command and "mypy nnctl" in command
    assert command.index("ruff") < command.index("pytest"), "ruff runs before the tests"
    assert '-m "not slow"' in command and "-m slow" in command


def distribution(requirement: str) -> str:
    """'ray' for 'ray[tune]>=2.9': a requirement's distribution name, normalized."""
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared_requirements() -> tuple[set[str], dict[str, set[str]]]:
    """The distributions pyproject.toml names: the core's, and each extra's."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = {extra: {distribution(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()}
    return {distribution(r) for r in project["dependencies"]}, extras


def third_party_imports(source: str) -> set[str]:
    """The top-level modules a file imports (at its top or inside functions), other than the standard library's
    and nnctl's own."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "nnctl"}


NOT_INSTALLED_HERE = {"cupy": "cupy-cuda12x"}
"""Modules of extras that CI does not install (the GPU's), with the distribution that provides them."""


def test_every_module_nnctl_imports_is_a_declared_dependency_of_the_extra_its_messages_name():
    """A module that comes only through another package's dependencies (grpc through tensorboard, once) is missing
    for a user who installs just the extra that needs it: each import must be declared in the core dependencies
    or in the extra the file's own 'pip install nnctl[...]' messages name (any extra, where it names none)."""
    from importlib.metadata import packages_distributions

    core, extras = declared_requirements()
    providers = packages_distributions()
    wrong = []
    for path in sorted((REPO / "nnctl").rglob("*.py")):
        source = path.read_text()
        named = set(re.findall(r"nnctl\[([a-z]+)\]", source)) or set(extras) - {"test", "bench"}
        allowed = core | set().union(*(extras[extra] for extra in named))
        for module in sorted(third_party_imports(source)):
            dists = {distribution(d) for d in providers.get(module, [])} or {NOT_INSTALLED_HERE[module]}
            if not dists & allowed:
                wrong.append(f"{path.relative_to(REPO)} imports {module} ({', '.join(sorted(dists))}), declared in "
                             f"neither the core nor nnctl[{','.join(sorted(named))}]")
    assert not wrong, "\n".join(wrong)
