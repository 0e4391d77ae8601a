"""YAML configs: loading with line numbers, bases, dotted overrides, and errors that name the line at fault."""

import copy
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnctl.backend import DTYPES, parse_device
from nnctl.compose import compose
from nnctl.errors import ConfigError
from nnctl.files import read_bytes, real_path
from nnctl.schema import Natural, as_declared, describe_value, did_you_mean, expected, matches
from nnctl.yaml_loader import KeyPath, dotted, parse_yaml

SECTIONS = ("name", "seed", "dtype", "device", "data", "model", "loss", "optimizer", "schedule", "train")
REQUIRED_SECTIONS = ("data", "model", "loss", "optimizer")
DEFAULT_SPECS = {"schedule": "constant"}
"""Sections given as `name` or `{type: name, ...}` that may be left out, and the name they then take."""
MAX_BYTES = 1 << 20
"""The largest config or sweep file read (larger data belongs in an .npz or .csv file)."""


@dataclass
class Config:
    """A loaded config: plain data plus where each key came from, for error messages, and the folder its
    relative paths (data files, model.weights) start from."""

    data: dict[str, Any]
    source: str = "<config>"
    origins: dict[KeyPath, str] = field(default_factory=dict)
    base_dir: Path = Path(".")
    overridden: set[KeyPath] = field(default_factory=set)
    """The keys overrides set (on the command line, by a sweep), whose origins `where` adds below a key."""

    def where(self, path: KeyPath) -> str:
        """'file:line' of the key at `path`, or of its closest ancestor that has one; with the overrides that set
        keys under it (an error about a whole section may be theirs)."""
        here = next((self.origins[path[:end]] for end in range(len(path), -1, -1) if path[:end] in self.origins),
                    self.source)
        below = sorted({self.origins[p] for p in self.overridden if len(p) > len(path) and p[:len(path)] == path}
                       - {here})
        return f"{here} (and {', '.join(below)})" if below else here

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """A ConfigError that names the file, line and key."""
        return ConfigError(f"{self.where(path)}: {dotted(path)}: {message}")

    def section(self, name: str) -> dict[str, Any]:
        """A top-level section that must be a mapping (an empty one when absent or null, never for 0 or [])."""
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error((name,), f"expected a mapping, got {describe_value(value)}")
        return value

    def spec(self, name: str) -> Any:
        """A section given as `name` or `{type: name, ...}`, as written; its default when absent or null, and a
        mapping without `type` the default's options (`schedule: {warmup_epochs: 1}` warms up the constant one)."""
        value, default = self.data.get(name), DEFAULT_SPECS.get(name)
        if default and isinstance(value, dict) and "type" not in value:
            return {"type": default, **value}
        return default if value is None else value


def parse_override(text: str) -> tuple[KeyPath, Any]:
    """'optimizer.lr=3e-4' -> (('optimizer', 'lr'), 0.0003); the value is read as a YAML scalar."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}': expected KEY=VALUE, such as optimizer.lr=0.001")
    path = key_path(key)
    if any(part == "" or (isinstance(part, str) and part != part.strip()) for part in path):
        raise ConfigError(f"override '{text}': the key '{key}' has an empty or padded part; write dotted names "
                          "such as optimizer.lr")
    parsed, _ = parse_yaml(value, f"override '{text}'")
    return path, parsed


PATH_KEYS = {("data", "path"), ("data", "test_path"), ("data", "root"), ("model", "weights"),
             ("model", "weights", "path")}
"""The keys that name a file or folder: relative to the config's folder where the config says them."""


def paths_from_cwd(overrides: typing.Sequence[str], here: Path) -> list[str]:
    """Overrides typed on the command line, a relative path given to one of PATH_KEYS made absolute from `here`,
    the folder the command was typed in (`model.weights=and.npz` names ./and.npz, not one beside the config)."""
    typed = []
    for text in overrides:
        try:
            path, parsed = parse_override(text)
        except ConfigError:  # reported where the override is applied
            typed.append(text)
            continue
        if not any(key[:len(path)] == path or path[:len(key)] == key for key in PATH_KEYS):
            typed.append(text)  # kept as typed: a value such as .nan is not equal to itself, so not compared
            continue
        given: Any = parsed
        for key in reversed(path):  # the override as config data, to which absolute_paths applies
            given = {key: given}
        made: Any = absolute_paths(given, here)
        for key in path:
            made = made[key]
        typed.append(text if made == parsed else f"{text.partition('=')[0]}={json.dumps(made)}")  # JSON is YAML
    return typed


def absolute_paths(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """A copy of config data whose relative paths at PATH_KEYS start from `base_dir`, written out absolute: it then
    means the same from any folder."""
    data = copy.deepcopy(data)
    for path in PATH_KEYS:
        *parents, last = path
        holder: Any = data
        for key in parents:
            holder = holder.get(key) if isinstance(holder, dict) else None
        value = holder.get(last) if isinstance(holder, dict) else None
        if isinstance(value, str) and value.strip() and "://" not in value and \
                not Path(value).expanduser().is_absolute():
            holder[last] = os.path.abspath(base_dir / value)
    return data


def key_path(key: str) -> KeyPath:
    """'model.layers.0.units' -> ('model', 'layers', 0, 'units')."""
    return tuple(int(p) if p.isascii() and p.isdigit() else p for p in key.strip().split("."))


def apply_override(config: Config, path: KeyPath, value: Any, origin: str) -> None:
    """Set `value` at `path`, creating mappings on the way; a `*` in the path stands for each list item (or
    mapping value) that has the key after it, as in `model.layers.*.weight_init.std`."""
    if path[-1] == "*":
        raise ConfigError(f"{origin}: {dotted(path)}: a '*' stands for the items that have the key after it, so a "
                          "key must follow it, such as model.layers.*.weight_init")
    paths = expand_path(config.data, path)
    if not paths:
        raise ConfigError(f"{origin}: {dotted(path)}: its '*' matches no item of the config that has the key "
                          "after it")
    for concrete in paths:
        _set(config, concrete, copy.deepcopy(value), origin)


def expand_path(data: Any, path: KeyPath) -> list[KeyPath]:
    """The paths a key with `*` stands for: each list item (or mapping value) that has the key after it."""
    if "*" not in path:
        return [path]
    i = path.index("*")
    node = data
    for key in path[:i]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return []
    items = enumerate(node) if isinstance(node, list) else node.items() if isinstance(node, dict) else []
    nxt = path[i + 1] if i + 1 < len(path) else None
    return [concrete for k, item in items if isinstance(item, dict) and nxt in item
            for concrete in expand_path(data, path[:i] + (k,) + path[i + 1:])]


def _set(config: Config, path: KeyPath, value: Any, origin: str) -> None:
    node: Any = config.data
    for depth, key in enumerate(path[:-1]):
        child_path = path[: depth + 1]
        if isinstance(node, list):
            if not isinstance(key, int) or key >= len(node):
                raise ConfigError(f"{origin}: {dotted(child_path)}: no such list item")
        elif node.get(key) is None:
            node[key] = {}
            config.origins[child_path] = origin
        elif isinstance(node[key], str) and node[key].strip() and not isinstance(path[depth + 1], int):
            node[key] = {"type": node[key]}  # the shorthand `loss: mse` means {type: mse}
        node = node[key]
        if not isinstance(node, dict | list):
            raise ConfigError(f"{origin}: {dotted(child_path)} is {describe_value(node)}, "
                              "not a mapping or a list")
    if isinstance(node, list) and not (isinstance(path[-1], int) and path[-1] < len(node)):
        raise ConfigError(f"{origin}: {dotted(path)}: no such list item")
    node[path[-1]] = value
    for known in [p for p in config.origins if p[: len(path)] == path]:
        del config.origins[known]
    config.overridden -= {p for p in config.overridden if p[: len(path)] == path}
    config.origins[path] = origin
    config.overridden.add(path)


def load_config(path: str | Path, overrides: typing.Sequence[str] = ()) -> Config:
    """Read a YAML config (merged over its `base` chain), apply `key=value` overrides and check its top-level
    layout."""
    path = Path(path)
    data, origins = compose(path, read_yaml)
    config = from_dict(data, str(path), origins, real_path(path).parent)
    config.data.setdefault("name", path.stem)
    apply_overrides(config, overrides)
    return config


def read_yaml(path: Path) -> tuple[Any, dict[KeyPath, str]]:
    """One YAML file's data and the 'file:line' of each key."""
    try:
        text = read_bytes(path, ConfigError, "config file", MAX_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    return parse_yaml(text, str(path))


def apply_overrides(config: Config, overrides: typing.Sequence[str]) -> None:
    """Applies `key=value` overrides in order, then checks the top-level layout again."""
    for text in overrides:
        key_path, value = parse_override(text)
        apply_override(config, key_path, value, f"override '{text}'")
    check_top_level(config)


def from_dict(data: Any, source: str = "<config>", origins: dict | None = None,
              base_dir: str | Path = ".") -> Config:
    """Wrap already-parsed data (a checkpoint's config, a test's dict) as a Config."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a config must be a mapping of sections, got {describe_value(data)}")
    return Config(data, source, dict(origins or {}), Path(base_dir))


PATH_NAME_RULE = "use letters, digits, '.', '_' and '-' (no path separators, no '..')"
MAX_NAME = 200
"""The longest name of a run, sweep, member or layer (its run directory adds a time to it)."""


PATH_NAME = rf"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}"
"""A name that can become one file or folder name (a regular expression that Python and JSON Schema both read)."""


def is_path_name(name: Any) -> bool:
    """Whether `name` can become one file or folder name: no separators, no '..', nothing absolute."""
    return isinstance(name, str) and bool(re.fullmatch(PATH_NAME, name))


def path_name_rule(name: Any) -> str:
    """What a name is_path_name refuses must change: its length, when that is all, else the characters it holds."""
    if isinstance(name, str) and len(name) > MAX_NAME and is_path_name(name[:MAX_NAME]):
        return f"a name may have at most {MAX_NAME} characters, this one has {len(name)}"
    return PATH_NAME_RULE


def check_top_level(config: Config) -> None:
    """Unknown or missing sections, and the scalar ones' types."""
    for key in config.data:
        if key == "base":  # a file's base is merged when it is read: one set later has nothing to merge into
            raise config.error((key,), "base is read from a config file only, not set by an "
                                       "override or a sweep; write it in the file")
        if key not in SECTIONS:
            raise config.error((key,), f"unknown section{did_you_mean(key, SECTIONS)}; "
                                       f"expected one of: {', '.join(SECTIONS)}")
    for key in REQUIRED_SECTIONS:
        if config.data.get(key) is None:
            raise config.error((key,), f"missing required section '{key}'")
    checks = {"name": str, "seed": Natural}
    for key, hint in checks.items():
        if key not in config.data:
            continue
        if not matches(config.data[key], hint):
            raise config.error((key,), expected(hint, config.data[key]))
        config.data[key] = as_declared(config.data[key], hint)
    if not is_path_name(config.data.get("name", "x")):
        raise config.error(("name",), f"'{config.data['name']}' cannot name a run directory; "
                                            f"{path_name_rule(config.data['name'])}")
    dtype = config.data.setdefault("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise config.error(("dtype",), f"expected {' or '.join(DTYPES)}, got {describe_value(dtype)}")
    device = config.data.setdefault("device", "cpu")
    try:
        parse_device(device)
    except ValueError as exc:
        raise config.error(("device",), str(exc).replace(repr(device), describe_value(device))) from None
    config.data.setdefault("seed", 0)
