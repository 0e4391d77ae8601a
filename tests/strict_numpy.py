"""A NumPy-backed stand-in for CuPy that refuses what CuPy refuses: implicit conversion to host arrays, and
host arrays mixed into device computations. The whole training path runs under it on any machine."""

import numbers
import types
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin


class HostMixError(TypeError):
    """A host NumPy array met a device array, or a device array was turned into a host one implicitly."""


def _unwrap(value: Any) -> Any:
    if isinstance(value, DeviceArray):
        return value.a
    if isinstance(value, np.ndarray) and value.ndim > 0:
        raise HostMixError(f"a host NumPy array of shape {value.shape} was mixed into a device computation")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return DeviceArray(value)
    if isinstance(value, np.generic):  # CuPy's reductions and scalar indexing give 0-d device arrays
        return DeviceArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class DeviceArray(NDArrayOperatorsMixin):
    """An array "on the device": arithmetic and NumPy functions work, `np.asarray(a)` does not; `.get()` copies
    it to the host, as CuPy's arrays do."""

    __slots__ = ("a",)

    def __init__(self, a: np.ndarray):
        self.a = a

    def get(self) -> np.ndarray:
        return self.a.copy()

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise HostMixError("implicit conversion of a device array to a host NumPy array (use .get())")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _wrap(getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs)))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __reduce__(self) -> Any:
        raise HostMixError("a device array was pickled; checkpoints hold host arrays only")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # __array_interface__ and friends would hand NumPy the host buffer
            raise AttributeError(name)
        attr = getattr(self.a, name)
        if callable(attr):
            return lambda *args, **kwargs: _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        return _wrap(attr)

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self.a[_index(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self.a[_index(key)] = _unwrap(value)

    def __len__(self) -> int:
        return len(self.a)

    def __iter__(self) -> Any:
        return (_wrap(row) for row in self.a)

    def __float__(self) -> float:
        return float(self.a)

    def __int__(self) -> int:
        return int(self.a)

    def __bool__(self) -> bool:
        return bool(self.a)

    def __index__(self) -> int:
        return self.a.__index__()

    def __repr__(self) -> str:
        return f"DeviceArray({self.a!r})"

    @property
    def T(self) -> "DeviceArray":  # noqa: N802 - NumPy's name
        return DeviceArray(self.a.T)


def _index(key: Any) -> Any:
    """Indices may be host arrays (CuPy copies them over), device arrays, ints and slices."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key.a if isinstance(key, DeviceArray) else key


class StrictModule:
    """The `xp` of a fake device: NumPy's namespace whose functions take and return DeviceArrays."""

    def __init__(self, module: Any = np):
        self._module = module

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._module, name)
        if isinstance(attr, (type, numbers.Number, np.ufunc)):
            return attr
        if isinstance(attr, types.ModuleType):
            return StrictModule(attr)
        if callable(attr):
            return lambda *args, **kwargs: _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        return attr

    def asarray(self, a: Any, dtype: Any = None) -> DeviceArray:
        """The host-to-device copy: the one place a host array may enter."""
        return DeviceArray(np.array(a.a if isinstance(a, DeviceArray) else a, dtype=dtype))

