"""Reading YAML safely into plain data with the line of every key: bounded depth, bounded alias expansion,
merge keys (`<<`), and one ConfigError naming the line for anything else a file can hold."""

import re
from typing import Any

import yaml

from nnctl.errors import ConfigError

KeyPath = tuple[str | int, ...]
MAX_DEPTH = 100
"""Nesting deeper than this is refused (a config needs a handful of levels; thousands exhaust Python's stack)."""
MAX_ALIAS_VALUES = 100_000
"""Values that aliases may repeat in one file; a "billion laughs" would repeat 10⁹ of them."""
_MERGE = "tag:yaml.org,2002:merge"
_KINDS: dict[type, str] = {yaml.MappingNode: "a mapping", yaml.SequenceNode: "a sequence"}


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`), `010` as ten and `1:30` as text (YAML
    1.1's octal 8 and base-60 90, which YAML 1.2 and editors dropped), only true and false as booleans (`yes`,
    `no`, `on` and `off` are text, as in YAML 1.2), keeps dates as text (a checkpoint holds plain data only) and
    stops composing past MAX_DEPTH levels."""

    source = "<yaml>"
    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise ConfigError(f"{self.source}:{line}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_INT, _FLOATS, _BOOL = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:timestamp", _INT, _FLOATS, _BOOL)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0b[0-1_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOATS, re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                                                   |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                                                   |[-+]?\.(?:inf|Inf|INF)
                                                   |\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))
_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_Loader.add_implicit_resolver(_FLOATS, _FLOAT, list("-+0123456789"))


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """An int as _Loader resolves them: decimal (`010` is ten), 0b binary or 0x hexadecimal, `_` between digits."""
    text = loader.construct_scalar(node).replace("_", "")
    sign, digits = (-1, text[1:]) if text[0] == "-" else (1, text.lstrip("+"))
    return sign * int(digits, {"0b": 2, "0x": 16}.get(digits[:2], 10))


_Loader.add_constructor(_INT, _int)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes the strings _Loader would read as floats (a run named `1e-05`), so what nnctl writes
    reads back as it was."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789"))


def dump_yaml(data: Any, **options: Any) -> str:
    """YAML text of plain data that parse_yaml reads back equal."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, **options)


def dotted(path: KeyPath) -> str:
    """`("model", "layers", 0, "units")` -> `model.layers.0.units`."""
    return ".".join(str(p) for p in path) or "<top level>"


class _Builder:
    """Turns composed nodes into dicts, lists and scalars, recording where each key path came from."""

    def __init__(self, loader: _Loader, source: str):
        self.loader, self.source = loader, source
        self.origins: dict[KeyPath, str] = {}
        self.seen: set[int] = set()
        self.open: set[int] = set()
        self.repeats = 0

    def line(self, node: yaml.Node) -> str:
        return f"{self.source}:{node.start_mark.line + 1}"

    def value(self, node: yaml.Node, path: KeyPath) -> Any:
        if id(node) in self.open:
            raise ConfigError(f"{self.line(node)}: {dotted(path)}: an alias refers to a node that holds it "
                              "(a recursive alias)")
        if id(node) in self.seen:
            self.repeats += 1
            if self.repeats > MAX_ALIAS_VALUES:
                raise ConfigError(f"{self.line(node)}: {dotted(path)}: aliases repeat more than {MAX_ALIAS_VALUES:,} "
                                  "values (an alias bomb?); write the values out or use fewer aliases")
        self.seen.add(id(node))
        self.origins[path] = self.line(node)
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.loader.construct_object(node)
            except ValueError:  # Python refuses to read an int of over 4,300 digits
                raise ConfigError(f"{self.line(node)}: {dotted(path)}: a number of {len(node.value):,} characters "
                                  "is too long to read") from None
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.value(item, path + (i,)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            return self.loader.construct_object(node)
        finally:
            self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merges = [value for key, value in node.value if key.tag == _MERGE]
        for merged in merges:  # `<<: *a` or `<<: [*a, *b]`: earlier mappings win, keys written here win over all
            sources = merged.value if isinstance(merged, yaml.SequenceNode) else [merged]
            for source in reversed(sources):
                value = self.value(source, path)
                if not isinstance(value, dict):
                    raise ConfigError(f"{self.line(source)}: {dotted(path)}: '<<' merges mappings, not "
                                      f"{type(value).__name__} values")
                result.update(value)
        self.origins[path] = self.line(node)
        written: set[Any] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.key(key_node, path)
            if key in written:
                raise ConfigError(f"{self.line(key_node)}: {dotted(path + (key,))}: key given twice")
            written.add(key)
            if key in result:  # a merged value this key replaces: forget where its parts came from
                for known in [p for p in self.origins if p[: len(path) + 1] == path + (key,)]:
                    del self.origins[known]
            result[key] = self.value(value_node, path + (key,))
        return result

    def key(self, node: yaml.Node, path: KeyPath) -> Any:
        key = self.value(node, path + ("<key>",)) if isinstance(node, yaml.ScalarNode) else None
        self.origins.pop(path + ("<key>",), None)
        if not isinstance(key, str | int | float | bool):
            raise ConfigError(f"{self.line(node)}: {dotted(path)}: a key must be a name, not "
                              f"{'null' if isinstance(node, yaml.ScalarNode) else _KINDS.get(type(node), 'a value')}")
        return key


def parse_yaml(text: str, source: str) -> tuple[Any, dict[KeyPath, str]]:
    """Parse YAML text into plain data and a map from key path to 'source:line'."""
    builder = None
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, source) from None
    loader.source = source
    try:
        node = loader.get_single_node()
        builder = _Builder(loader, source)
        data = None if node is None else builder.value(node, ())
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        context = (f" ({exc.context} on line {exc.context_mark.line + 1})"
                   if exc.context and exc.context_mark and exc.problem_mark else "")
        raise ConfigError(f"{source}{line}: YAML syntax error: {exc.problem or exc.context}{context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML syntax error: {exc}") from None
    finally:
        loader.dispose()
    return data, builder.origins


def _reader_error(exc: yaml.reader.ReaderError, text: str, source: str) -> ConfigError:
    """A character YAML does not allow (a control character, say), with its line."""
    line = text[: exc.position].count("\n") + 1 if isinstance(exc.position, int) else "?"
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return ConfigError(f"{source}:{line}: the character U+{code:04X} is not allowed in YAML ({exc.reason}); "
                       f"remove it, or write it as \"\\u{code:04x}\" inside double quotes")
