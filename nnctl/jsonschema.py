"""A JSON Schema of the config, generated from the constructor signatures the validator reads (`nnctl schema`)."""

import inspect
import sys
import types
import typing
from typing import Any

from nnctl.backend import DEVICE, DTYPES
from nnctl.config import DEFAULT_SPECS, PATH_NAME, REQUIRED_SECTIONS, SECTIONS
from nnctl.experiment import TrainSettings
from nnctl.init import INITIALIZERS
from nnctl.layers import LAYERS
from nnctl.layers.activations import activations
from nnctl.registry import Registry
from nnctl.schema import Natural, bounds, matches
from nnctl.sections import NESTED, PROVIDED, SPEC_SECTIONS, arguments

DRAFT = "https://json-schema.org/draft/2020-12/schema"
NAME = {"type": "string", "pattern": f"^{PATH_NAME}$"}
"""A run's or a layer's name, as is_path_name takes it."""


def config_schema() -> dict[str, Any]:
    """The whole config: strict where a config stands alone; where it has a `base`, every section may be
    partial (the base supplies the rest)."""

    def sections(strict: bool) -> dict[str, Any]:
        schemas = {
            **{name: spec_schema(registry, strict, PROVIDED.get(name, ()), DEFAULT_SPECS.get(name))
               for name, registry in SPEC_SECTIONS.items()},
            "model": {"type": "object", "additionalProperties": False, "properties": {
                "layers": {"type": "array", "minItems": 1, "items": spec_schema(LAYERS, strict)},
                "weights": {"type": "string", "description": "an .npz file written by nnctl export"}}},
            "train": class_schema(TrainSettings, strict),
        }
        return {name: schema if name in REQUIRED_SECTIONS else nullable(schema) for name, schema in schemas.items()}

    required = list(REQUIRED_SECTIONS)
    return {
        "$schema": DRAFT, "title": "nnctl config", "type": "object", "additionalProperties": False,
        "properties": {
            "base": {"type": "string", "description": "a config this one is merged over, relative to this file"},
            "name": NAME,
            "seed": type_schema(Natural),
            "dtype": {"enum": list(DTYPES)},
            "device": {"type": "string", "pattern": f"^({DEVICE})$"},
            **{s: {} for s in SECTIONS if s not in ("name", "seed", "dtype", "device")},
        },
        "if": {"required": ["base"]},
        "then": {"properties": sections(strict=False)},
        "else": {"properties": sections(strict=True), "required": required},
    }


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or null: a key left at (or, over a base, deleted back to) its default."""
    return {"anyOf": [schema, {"type": "null"}]}


def spec_schema(registry: Registry, strict: bool = True, provided: tuple[str, ...] = (),
                default: str | None = None) -> dict[str, Any]:
    """A registered name, or a mapping with `type` and that class's keys (or, for a section with a `default`
    type, that type's keys without `type`)."""
    names = list(registry)
    choices = [class_schema(registry.get(name), strict, provided, name) for name in names]
    untyped = [class_schema(registry.get(default), strict, provided)] if default else []
    return {"anyOf": [{"enum": names}, *choices, *untyped]}


def class_schema(cls: type, strict: bool = True, provided: tuple[str, ...] = (),
                 name: str | None = None) -> dict[str, Any]:
    """A mapping of `cls`'s constructor arguments; `type` fixed to `name` when given; the required ones
    required when `strict`, any one null (deleting) when not."""
    params = arguments(cls, provided)
    properties = {key: _param_schema(key, param) for key, param in params.items()}
    if not strict:  # over a base, `key: null` deletes the base's key
        properties = {key: nullable(schema) for key, schema in properties.items()}
    required = [k for k, p in params.items() if p.default is inspect.Parameter.empty]
    if name is not None:
        properties = {"type": {"const": name}, **properties}
        required = ["type", *required]
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if (cls.__doc__ or "").strip():
        schema["description"] = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
    if strict and required:
        schema["required"] = required
    return schema


def _param_schema(key: str, param: inspect.Parameter) -> dict[str, Any]:
    schema: dict[str, Any]
    if key in NESTED:
        schema = nullable(class_schema(NESTED[key]))
    elif key.endswith("_init"):
        schema = initializer_schema()
    elif key == "name":  # a layer's: its arrays are exported as <name>/<key>
        schema = nullable(NAME)
    elif key == "activation" and typing.get_origin(param.annotation) is not typing.Literal:
        # the builder's rule (builder.with_sub_objects): a name, or null where none may be
        names = {"enum": list(activations())}
        schema = nullable(names) if matches(None, param.annotation) else names
    else:
        schema = type_schema(param.annotation)
    if param.default is not inspect.Parameter.empty and isinstance(param.default, int | float | str | bool | None):
        schema = {**schema, "default": param.default}
    return schema


FINITE = {"type": "number", "minimum": -sys.float_info.max, "maximum": sys.float_info.max}
"""A number as matches() takes one for a float: an infinity, or an int past float's range, is none (a NaN, which
JSON Schema cannot tell apart, is refused by nnctl alone)."""
MAX_PARAM_AXES = 4
"""The most axes of a parameter (a convolution's filters, channels, rows, columns), written out as numbers."""


def initializer_schema() -> dict[str, Any]:
    """An initializer name, a mapping with `type`, or the numbers themselves (finite, in lists of lists)."""
    numbers: dict[str, Any] = FINITE
    for _ in range(MAX_PARAM_AXES):
        numbers = {"anyOf": [FINITE, {"type": "array", "items": numbers}]}
    return {"anyOf": [spec_schema(INITIALIZERS), numbers]}


def type_schema(hint: Any) -> dict[str, Any]:
    """A type hint as JSON Schema: int, float, str, bool, None, unions, Literal, list/tuple/dict of, bounded
    numbers."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if origin is typing.Annotated:
        return {**type_schema(args[0]), **{b.keyword: b.limit for b in bounds(hint)}}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [type_schema(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    simple = {int: "integer", str: "string", bool: "boolean", type(None): "null", dict: "object"}
    if hint is float:
        return dict(FINITE)
    if hint in simple:
        return {"type": simple[hint]}
    if origin is dict:
        return {"type": "object"}
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return {"type": "array", "prefixItems": [type_schema(a) for a in args], "minItems": len(args),
                    "maxItems": len(args)}
        return {"type": "array", **({"items": type_schema(args[0])} if args else {})}
    if hint in (list, tuple):
        return {"type": "array"}
    raise TypeError(f"no JSON Schema for the type hint {hint!r}")
