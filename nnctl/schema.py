"""Checking config values against constructor signatures: the signature of a class is its YAML schema."""

import difflib
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnctl.config import Config, KeyPath


def did_you_mean(name: str, choices: typing.Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix when a close match exists, else ''."""
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""



def matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a type hint (int, float, str, bool, None, unions, list/tuple/dict of)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is float:  # NaN and infinities are never a setting: a NaN lr trains NaN weights to the end
        return is_number(value) and finite(value)
    if hint is int:
        return is_instance(value, int) or integral(value)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args, strict=True))
        return not args or all(matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, origin or hint)


def integral(value: Any) -> bool:
    """A float without a fraction (`2.0`, `1e3`): an integer to JSON, and so to the JSON Schema and editors."""
    return type(value) is float and value.is_integer()


def as_declared(value: Any, hint: Any) -> Any:
    """`value`, which matches `hint`, as the hint declares it: an integral float as its int where the hint takes
    no float (`epochs: 2.0` is 2), within lists too."""
    if integral(value) and not matches(0.5, hint):
        return int(value)
    if isinstance(value, list):
        alternatives = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        for alternative in alternatives:
            origin, args = typing.get_origin(alternative), typing.get_args(alternative)
            if origin in (list, tuple) and args and matches(value, alternative):
                hints = args if origin is tuple and args[-1] is not Ellipsis else (args[0],) * len(value)
                return [as_declared(v, h) for v, h in zip(value, hints, strict=True)]
    return value


def is_instance(value: Any, kind: type | tuple[type, ...]) -> bool:
    """isinstance, except that a bool is of no kind but bool (to Python, True is the int 1)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))


def is_number(value: Any) -> bool:
    """An int or a float, not a bool."""
    return is_instance(value, (int, float))


def finite(value: int | float) -> bool:
    """Whether a number is finite as a float (an int beyond float's range, about 1.8e308, is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def brief(number: int | float) -> str:
    """A number for a message, a long one cut short: '1000000000000', '9999999999999999999...(400 digits)'."""
    text = repr(number)
    return text if len(text) <= 24 else f"{text[:20]}...({len(text)} digits)"


def describe_type(hint: Any) -> str:
    """A type hint in words: 'int', 'float or null', 'list of int'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if hint is type(None):
        return "null"
    if hint is bool:
        return "true or false"
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {describe_type(args[0])}"
        return f"a list of {describe_type(args[0])}" if args else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


YAML_1_1_BOOLEANS = ("yes", "no", "on", "off", "y", "n")
"""Words YAML 1.1 read as booleans; nnctl, as YAML 1.2, reads them as text."""


def expected(hint: Any, value: Any) -> str:
    """'expected <hint>, got <value>', saying why a `yes` meant as a boolean is text."""
    words = isinstance(value, str) and value.lower() in YAML_1_1_BOOLEANS and matches(True, hint)
    note = " (only true and false are booleans, as in YAML 1.2)" if words else ""
    return f"expected {describe_type(hint)}, got {describe_value(value)}{note}"


def describe_value(value: Any) -> str:
    """A value with its YAML type, for messages: "str 'abc'", 'null'."""
    if value is None:
        return "null"
    kinds: dict[type, str] = {dict: "mapping", list: "list"}
    kind = kinds.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


@functools.cache  # a class's signature does not change; a config of thousands of layers asks thousands of times
def signature_params(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword arguments `cls(...)` accepts, following `**kwargs` up to the base classes."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        hints = typing.get_type_hints(init)
        has_kwargs = False
        for name, param in inspect.signature(init).parameters.items():
            if name == "self" or param.kind == param.VAR_POSITIONAL:
                continue
            if param.kind == param.VAR_KEYWORD:
                has_kwargs = True
                continue
            params.setdefault(name, param.replace(annotation=hints.get(name, param.annotation)))
        if not has_kwargs:
            break
    return params


def check_kwargs(cls: type, kwargs: dict[str, Any], config: "Config", path: "KeyPath", what: str,
                 provided: typing.Collection[str] = ()) -> None:
    """Report unknown keys, missing required keys and wrong types, naming the config line."""
    params = {k: p for k, p in signature_params(cls).items() if k not in provided}
    for key, value in kwargs.items():
        if key not in params:
            accepted = ", ".join(params) or "none"
            raise config.error(path + (key,), f"unknown key for {what}{did_you_mean(key, params)}; "
                                              f"accepted keys: {accepted}")
        hint = params[key].annotation
        if not matches(value, hint):
            if is_number(value) and not finite(value) and matches(0.0, hint):
                if isinstance(value, float):
                    raise config.error(path + (key,), f"must be a finite number, got {value}")
                raise config.error(path + (key,), f"must be a finite number within float's range (±1.8e308), "
                                                  f"got {describe_value(value)}")  # an int past float's range
            raise config.error(path + (key,), expected(hint, value))
    for key, param in params.items():
        if param.default is inspect.Parameter.empty and key not in kwargs:
            raise config.error(path, f"missing required key '{key}' for {what}")


def construct(cls: type, kwargs: dict[str, Any], config: "Config", path: "KeyPath", what: str,
              provided: dict[str, Any] | None = None,
              resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Any:
    """Checks `kwargs` against `cls`'s signature, then builds it (with `provided`, which nnctl supplies, and the
    checked keys passed through `resolve` if given); a ValueError from the constructor becomes the config's error
    at `path`, or at the key its message starts with where that key is given ("lr must be positive")."""
    provided = provided or {}
    check_kwargs(cls, kwargs, config, path, what, provided)
    params = signature_params(cls)
    kwargs = {key: as_declared(value, params[key].annotation) for key, value in kwargs.items()}
    try:
        return cls(**(resolve(kwargs) if resolve else kwargs), **provided)
    except ValueError as exc:
        key = str(exc).split(" ", 1)[0]
        raise config.error(path + ((key,) if key in kwargs else ()), str(exc)) from None
