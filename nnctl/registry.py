"""Name -> class registries for layers, losses, optimizers, schedules, initializers and datasets."""

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from nnctl.config import Config, KeyPath
from nnctl.errors import ConfigError
from nnctl.schema import construct, describe_value, did_you_mean


class Registered(Protocol):
    """What a registry needs of its classes: a slot for the name they are registered under."""

    registered_name: ClassVar[str]


T = TypeVar("T", bound=Registered)


class Registry(Generic[T]):
    """Classes registered under names; builds one from a config spec (`name` or `{type: name, ...}`)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: `@LAYERS.register("dense")`."""

        def add(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._classes[name] = cls
            cls.registered_name = name
            return cls

        return add

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._classes))

    def get(self, name: str, config: Config | None = None, path: KeyPath = ()) -> type[T]:
        """The class registered as `name`, or a ConfigError that suggests a close name."""
        if name in self._classes:
            return self._classes[name]
        message = (f"unknown {self.kind} '{name}'{did_you_mean(name, self._classes)}; "
                   f"known: {', '.join(self)}")
        if config is None:
            raise ConfigError(message)
        raise config.error(path, message)

    def split(self, spec: Any, config: Config, path: KeyPath) -> tuple[type[T], dict[str, Any]]:
        """A spec's class (its `type` looked up) and its other keys as keyword arguments, not yet checked against
        the class's signature (`build` does that)."""
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, dict):
            raise config.error(path, f"expected a {self.kind} name or a mapping with 'type', "
                                     f"got {describe_value(spec)}")
        kwargs = dict(spec)
        if "type" not in kwargs:
            raise config.error(path, f"missing 'type' (one of: {', '.join(self)})")
        name = kwargs.pop("type")
        if not isinstance(name, str):
            raise config.error(path + ("type",), f"expected a {self.kind} name, got {describe_value(name)}")
        cls = self.get(name, config, path + ("type",))
        return cls, kwargs

    def build(self, spec: Any, config: Config, path: KeyPath, **provided: Any) -> T:
        """Check a spec against its class's signature, then construct it (`provided` comes from nnctl)."""
        cls, kwargs = self.split(spec, config, path)
        return construct(cls, kwargs, config, path, f"{self.kind} '{cls.registered_name}'", provided)
