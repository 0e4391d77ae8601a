"""Composed configs: `base: other.yaml` under a config, merged key by key, chains followed and cycles refused."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nnctl.errors import ConfigError
from nnctl.files import real_path, regular_file
from nnctl.schema import describe_value

Origins = dict[tuple, str]
Reader = Callable[[Path], tuple[Any, Origins]]
MAX_BASES = 100
"""The longest chain of bases followed (a config needs a few; thousands exhaust Python's stack)."""


def compose(path: Path, read: Reader, chain: tuple[Path, ...] = ()) -> tuple[Any, Origins]:
    """The config at `path` read by `read` (data and 'file:line' origins), merged over its `base` chain: the
    child's keys over the base's, mappings merged, lists and scalars replaced whole, `key: null` deleting."""
    data, origins = read(path)
    if not isinstance(data, dict) or "base" not in data:
        return data, origins
    where = origins.get(("base",), str(path))
    chain = (*chain, real_path(path))
    base_path = _base_path(data.pop("base"), path, where, chain)
    merged, merged_origins = compose(base_path, read, chain)
    if not isinstance(merged, dict):
        raise ConfigError(f"{where}: base: {base_path} is not a config (a mapping of sections)")
    merged.pop("name", None)  # a run is named by the config given, not by its base
    _drop(merged_origins, ("name",))
    return merge(merged, data, merged_origins, origins), merged_origins


def _base_path(base: Any, path: Path, where: str, chain: tuple[Path, ...]) -> Path:
    """The file that the `base:` of the config at `path` (its line `where`, the configs before it `chain`) names;
    ConfigError where it is no path, the chain is too long or loops, or it is not a regular file."""
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{where}: base: expected the path of another config (relative to this one), "
                          f"got {describe_value(base)}")
    base_path = path.parent / Path(base).expanduser()
    if len(chain) > MAX_BASES:
        raise ConfigError(f"{where}: base: a chain of more than {MAX_BASES} bases (from {chain[0]}); merge some of "
                          "them into one file")
    if real_path(base_path) in chain:
        names = " -> ".join(str(p) for p in (*chain, real_path(base_path)))
        raise ConfigError(f"{where}: base: {base} leads back to a config already in the chain ({names}); "
                          "a config cannot be its own base")
    try:
        regular_file(base_path, ConfigError, "config file")
    except ConfigError as exc:
        raise ConfigError(f"{where}: base: {exc}") from None
    return base_path


def merge(base: dict, child: dict, origins: Origins, child_origins: Origins, path: tuple = ()) -> dict:
    """`child` over `base` (both changed in place); `origins` (the base's) takes the child's where it wins."""
    for key, value in child.items():
        at = (*path, key)
        if value is None:
            base.pop(key, None)
            _drop(origins, at)
            if at in child_origins:  # an error about the missing key then names the line that deleted it
                origins[at] = child_origins[at]
            continue
        if isinstance(value, dict) and isinstance(base.get(key), str):
            base[key] = {"type": base[key]}  # the shorthand `loss: mse` means {type: mse}
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            origins[at] = child_origins.get(at, origins.get(at, ""))
            merge(base[key], value, origins, child_origins, at)
            continue
        _drop(origins, at)
        origins.update({p: o for p, o in child_origins.items() if p[:len(at)] == at})
        base[key] = value
    return base


def _drop(origins: Origins, at: tuple) -> None:
    """Forgets the origins of the key at `at` and of everything under it."""
    for known in [p for p in origins if p[:len(at)] == at]:
        del origins[known]
