"""Checking config values against constructor signatures: the signature of a class is its YAML schema."""

import difflib
import functools
import inspect
import math
import operator
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from nnctl.errors import KeyValueError

if TYPE_CHECKING:
    from nnctl.config import Config, KeyPath


def did_you_mean(name: str, choices: typing.Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix when a close match exists, else ''."""
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""



class Bound:
    """One end of a number's range, in a signature: `Annotated[int, AtLeast(1)]` is an integer ≥ 1. Both the
    validator and the JSON Schema read it."""

    symbol: ClassVar[str]
    bracket: ClassVar[str]
    """Its side of an interval: [0, 1)."""
    keyword: ClassVar[str]
    """The JSON Schema keyword that states it."""
    compare: ClassVar[Callable[[Any, Any], bool]]

    def __init__(self, limit: int | float):
        self.limit = limit

    def holds(self, value: int | float) -> bool:
        """Whether `value` lies on the allowed side."""
        return type(self).compare(value, self.limit)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.limit})"


class AtLeast(Bound):
    """value ≥ limit"""

    symbol, bracket, keyword, compare = "≥", "[", "minimum", operator.ge


class Above(Bound):
    """value > limit"""

    symbol, bracket, keyword, compare = ">", "(", "exclusiveMinimum", operator.gt


class AtMost(Bound):
    """value ≤ limit"""

    symbol, bracket, keyword, compare = "≤", "]", "maximum", operator.le


class Below(Bound):
    """value < limit"""

    symbol, bracket, keyword, compare = "<", ")", "exclusiveMaximum", operator.lt


Count = Annotated[int, AtLeast(1)]
"""Units, epochs, sizes, steps."""
Natural = Annotated[int, AtLeast(0)]
"""A count that may be 0 (padding, cooldown)."""
Positive = Annotated[float, Above(0)]
"""A rate or a factor that 0 would stop (lr, eps, gamma)."""
NonNegative = Annotated[float, AtLeast(0)]
"""A weight that 0 turns off (l2, weight_decay)."""
Fraction = Annotated[float, AtLeast(0), Below(1)]
"""A share below the whole: a dropout rate, a momentum, a decay of running means."""


def bounds(hint: Any) -> list[Bound]:
    """The bounds an Annotated hint states (none for any other hint)."""
    if typing.get_origin(hint) is not Annotated:
        return []
    return [mark for mark in typing.get_args(hint)[1:] if isinstance(mark, Bound)]


def matches(value: Any, hint: Any, bounded: bool = True) -> bool:
    """Whether a YAML value fits a type hint (int, float, str, bool, None, unions, Literal, list/tuple/dict of,
    numbers Annotated with bounds, which `bounded=False` ignores)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return matches(value, args[0], bounded) and (not bounded or all(b.holds(value) for b in bounds(hint)))
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a, bounded) for a in args)
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
            return len(value) == len(args) and all(matches(v, a, bounded) for v, a in zip(value, args, strict=True))
        return not args or all(matches(v, args[0], bounded) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, origin or hint)


def integral(value: Any) -> bool:
    """A float without a fraction (`2.0`, `1e3`): an integer to JSON, and so to the JSON Schema and editors."""
    return type(value) is float and value.is_integer()


def as_declared(value: Any, hint: Any) -> Any:
    """`value`, which matches `hint`, as the hint declares it: an integral float as its int where only an int
    alternative takes it (`epochs: 2.0` is 2, a validation fraction 0.5 stays 0.5), within lists too."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return as_declared(value, args[0])
    if origin in (typing.Union, types.UnionType):
        fits = [a for a in args if matches(value, a)]
        as_is = [a for a in fits if as_declared(value, a) is value]
        return as_declared(value, (as_is or fits or [Any])[0])
    if hint is int and integral(value):
        return int(value)
    if isinstance(value, list) and origin in (list, tuple) and args:
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


def describe_type(hint: Any, many: bool = False) -> str:
    """A type hint in words: 'int', 'float or null', 'a list of int', 'an integer ≥ 1' ('integers ≥ 1' as a
    list's items)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        noun = ("integers" if many else "an integer") if args[0] is int else ("numbers" if many else "a number")
        return f"{noun} {describe_range(bounds(hint))}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a, many) for a in args)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if hint is type(None):
        return "null"
    if hint is bool:
        return "true or false"
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {describe_type(args[0], many=True)}"
        return f"a list of {describe_type(args[0], many=True)}" if args else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


YAML_1_1_BOOLEANS = ("yes", "no", "on", "off", "y", "n")
"""Words YAML 1.1 read as booleans; nnctl, as YAML 1.2, reads them as text."""


def expected(hint: Any, value: Any) -> str:
    """'expected <hint>, got <value>': a number out of range as itself ('got -1'), other values with their type,
    saying why a `yes` meant as a boolean is text."""
    words = isinstance(value, str) and value.lower() in YAML_1_1_BOOLEANS and matches(True, hint)
    note = " (only true and false are booleans, as in YAML 1.2)" if words else ""
    got = brief(value) if is_number(value) and matches(value, hint, bounded=False) else describe_value(value)
    return f"expected {describe_type(hint)}, got {got}{note}"


def describe_range(marks: list[Bound]) -> str:
    """Bounds in words: '≥ 1', 'in [0, 1)'."""
    if len(marks) == 2:
        low, high = sorted(marks, key=lambda b: b.bracket in ")]")
        return f"in {low.bracket}{brief(low.limit)}, {brief(high.limit)}{high.bracket}"
    return " and ".join(f"{b.symbol} {brief(b.limit)}" for b in marks)


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
        hints = typing.get_type_hints(init, include_extras=True)  # Annotated bounds included
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
            if is_number(value) and not finite(value) and matches(0.0, hint, bounded=False):
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
    except KeyValueError as exc:  # a key inside one of the mapping's own mappings (data.augment.shift)
        raise config.error(exc.key, exc.problem) from None
    except ValueError as exc:
        key = str(exc).split(" ", 1)[0]
        raise config.error(path + ((key,) if key in kwargs else ()), str(exc)) from None
