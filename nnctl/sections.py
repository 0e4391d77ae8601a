"""Which class reads each part of a config: the resolved config (`nnctl config`) and the JSON Schema walk this."""

import copy
import inspect
from functools import partial
from typing import Any

from nnctl.builder import layer_specs, with_sub_objects
from nnctl.config import SECTIONS, Config
from nnctl.data import DATASETS
from nnctl.data.augment import Augment
from nnctl.experiment import EarlyStopping, TrainSettings, source_arguments, train_settings
from nnctl.losses import LOSSES
from nnctl.optim import OPTIMIZERS
from nnctl.registry import Registry
from nnctl.schedules import SCHEDULES
from nnctl.schema import as_declared, construct, signature_params

SPEC_SECTIONS: dict[str, Registry] = {"data": DATASETS, "loss": LOSSES, "optimizer": OPTIMIZERS,
                                      "schedule": SCHEDULES}
"""Top-level sections given as `name` or `{type: name, ...}`, and the registry that reads them."""
PROVIDED = {"data": ("base_dir", "run_seed")}
"""Constructor arguments nnctl passes itself, never read from the config (experiment.source_arguments)."""
NESTED: dict[str, type] = {"early_stopping": EarlyStopping, "augment": Augment}
"""Keys whose mapping is read by a class of its own."""


def arguments(cls: type, provided: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
    """The config keys `cls` reads: its constructor's arguments, less those nnctl provides."""
    return {k: p for k, p in signature_params(cls).items() if k not in provided}


def with_defaults(cls: type, kwargs: dict[str, Any], provided: tuple[str, ...] = ()) -> dict[str, Any]:
    """`kwargs` with every argument of `cls` it leaves out at its default, in the signature's order."""
    return {k: _plain(as_declared(kwargs[k], p.annotation) if k in kwargs else p.default)
            for k, p in arguments(cls, provided).items() if k in kwargs or p.default is not inspect.Parameter.empty}


def resolved(config: Config) -> dict[str, Any]:
    """The config with every default filled in, each part checked by the class that reads it, its values too
    (the constructors run), but no data is read and no layer is built."""
    data = copy.deepcopy(config.data)
    for section, registry in SPEC_SECTIONS.items():
        cls, kwargs = registry.split(config.spec(section), config, (section,))
        provided = PROVIDED.get(section, ())
        what = f"{registry.kind} '{cls.registered_name}'"
        given = {key: value for key, value in source_arguments(config).items() if key in provided}
        construct(cls, kwargs, config, (section,), what, given)
        data[section] = {"type": cls.registered_name, **with_defaults(cls, kwargs, provided)}
    for path, cls, kwargs in layer_specs(config):  # model.weights too, though nothing reads its file here
        construct(cls, kwargs, config, path, f"layer '{cls.registered_name}'",
                  resolve=partial(with_sub_objects, cls, config=config, path=path))
        spec = data["model"]["layers"][path[-1]]
        filled = with_defaults(cls, kwargs)
        if not isinstance(spec, dict) or spec.get("name") is None:
            del filled["name"]  # the builder names it <type>_<n>
        data["model"]["layers"][path[-1]] = {"type": cls.registered_name, **filled}
    train = config.section("train")
    train_settings(config)  # early_stopping too
    data["train"] = with_defaults(TrainSettings, train)
    if isinstance(train.get("early_stopping"), dict):
        data["train"]["early_stopping"] = with_defaults(NESTED["early_stopping"], train["early_stopping"])
    return {key: data[key] for key in SECTIONS if key in data}


def _plain(value: Any) -> Any:
    """Tuples as lists, so that the value writes as plain YAML or JSON."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
