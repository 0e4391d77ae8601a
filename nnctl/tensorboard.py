"""TensorBoard event files in the run directory, written with tensorboardX (the optional `tensorboard` extra)."""

import importlib.util
from pathlib import Path
from typing import Any

from nnctl.config import Config
from nnctl.runs import row_values, row_x


class TensorBoard:
    """Every metric row as scalars: `epoch/<metric>` against the epoch, `step/<metric>` and `eval/<metric>`
    against the optimizer step."""

    def __init__(self, run_dir: Path):
        from tensorboardX import SummaryWriter  # optional, and slow to import: only when asked for

        self.fresh = not any(run_dir.glob("events.out.tfevents.*"))
        """Whether the run had no event files yet (TensorBoard turned on at a resume): the earlier rows go in too."""
        self.writer = SummaryWriter(str(run_dir))

    @staticmethod
    def check(config: Config) -> None:
        """Before a run starts: a ConfigError at `train.tensorboard` when it is on and tensorboardX is missing."""
        if config.section("train").get("tensorboard") and importlib.util.find_spec("tensorboardX") is None:
            raise config.error(("train", "tensorboard"), "TensorBoard logging (--tensorboard) needs the "
                                                         "tensorboardX package: pip install 'nnctl[tensorboard]'")

    def append(self, row: dict[str, Any]) -> None:
        self.extend([row])

    def extend(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            for key, value in row_values(row).items():
                self.writer.add_scalar(f"{row['kind']}/{key}", value, row_x(row))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
