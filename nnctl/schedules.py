"""Learning-rate schedules: a factor on the optimizer's base lr, from the (fractional) epoch."""

import math
from typing import TYPE_CHECKING, Annotated, Any

from nnctl.metrics import improves
from nnctl.registry import Registry
from nnctl.schema import Above, AtLeast, AtMost, Below, Count, Natural, NonNegative, Positive

if TYPE_CHECKING:
    from nnctl.optim import Optimizer

SCHEDULES: Registry = Registry("schedule")


class Schedule:
    """factor(epoch) times a linear warm-up over the first `warmup_epochs` (fractions allowed)."""

    def __init__(self, warmup_epochs: NonNegative = 0.0):
        self.warmup_epochs = warmup_epochs

    def __call__(self, step: int, steps_per_epoch: int, total_epochs: float) -> float:
        """The lr factor for optimizer step `step` (0-based)."""
        return self.warmup(step, steps_per_epoch) * self.factor(step / steps_per_epoch, total_epochs)

    def warmup(self, step: int, steps_per_epoch: int) -> float:
        """The linear warm-up's factor for optimizer step `step`: 1 once it is over."""
        return min(1.0, (step + 1) / (self.warmup_epochs * steps_per_epoch)) if self.warmup_epochs else 1.0

    def observe(self, value: float, mode: str) -> None:
        """The monitored metric after an evaluation (`mode` min or max); schedules that react to it override."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of this schedule, for an exact resume."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what state_dict gave."""

    def set_lr(self, optimizer: "Optimizer", step: int, steps_per_epoch: int, total_epochs: float) -> None:
        """Sets the optimizer's lr for step `step`: its base lr times this schedule's factor."""
        optimizer.lr = optimizer.base_lr * self(step, steps_per_epoch, total_epochs)

    def factor(self, epoch: float, total_epochs: float) -> float:
        raise NotImplementedError


@SCHEDULES.register("constant")
class Constant(Schedule):
    """The optimizer's lr throughout (after any warm-up)."""

    def factor(self, epoch, total_epochs):
        return 1.0


@SCHEDULES.register("step")
class Step(Schedule):
    """lr · gamma^floor(epoch / every)."""

    def __init__(self, every: Positive, gamma: Positive = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.every, self.gamma = every, gamma

    def factor(self, epoch, total_epochs):
        return self.gamma ** math.floor(round(epoch / self.every, 9))  # 0.6 / 0.2 is 2.9999999999999996


@SCHEDULES.register("exponential")
class Exponential(Schedule):
    """lr · gamma^epoch, decaying smoothly within each epoch."""

    def __init__(self, gamma: Positive = 0.95, **kwargs):
        super().__init__(**kwargs)
        self.gamma = gamma

    def factor(self, epoch, total_epochs):
        return self.gamma ** epoch


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    """From lr down to lr·min_factor along half a cosine over all epochs."""

    def __init__(self, min_factor: Annotated[float, AtLeast(0), AtMost(1)] = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.min_factor = min_factor

    def factor(self, epoch, total_epochs):
        cos = 0.5 * (1 + math.cos(math.pi * min(epoch / total_epochs, 1.0)))
        return self.min_factor + (1 - self.min_factor) * cos


@SCHEDULES.register("reduce_on_plateau")
class ReduceOnPlateau(Schedule):
    """lr · factor^k: k grows by one when `train.monitor` has not improved for `patience` evaluations, then
    `cooldown` evaluations pass before counting again; the cuts never take it below `min_lr`."""

    def __init__(self, factor: Annotated[float, Above(0), Below(1)] = 0.1, patience: Count = 3,
                 min_lr: NonNegative = 0.0, cooldown: Natural = 0, min_delta: NonNegative = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.reduction, self.patience, self.min_lr, self.cooldown, self.min_delta = (factor, patience, min_lr,
                                                                                  cooldown, min_delta)
        self.scale, self.best, self.wait, self.cooling = 1.0, None, 0, 0

    def observe(self, value, mode):
        if improves(value, self.best, mode, self.min_delta):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        if self.cooling:  # every evaluation of the cooldown counts, improving or not (as PyTorch and Keras)
            self.cooling, self.wait = self.cooling - 1, 0
        if self.wait >= self.patience:
            self.scale *= self.reduction
            self.wait, self.cooling = 0, self.cooldown

    def factor(self, epoch, total_epochs):
        return self.scale

    def set_lr(self, optimizer, step, steps_per_epoch, total_epochs):
        """min_lr bounds the cuts only (as PyTorch's and Keras's): a warm-up still starts from near 0."""
        cut = max(optimizer.base_lr * self.scale, min(self.min_lr, optimizer.base_lr))
        optimizer.lr = self.warmup(step, steps_per_epoch) * cut

    def state_dict(self):
        return {"scale": self.scale, "best": self.best, "wait": self.wait, "cooling": self.cooling}

    def load_state_dict(self, state):
        self.scale, self.best, self.wait, self.cooling = state["scale"], state["best"], state["wait"], state["cooling"]
