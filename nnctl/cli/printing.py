"""The consoles commands print through, and their JSON output."""

from __future__ import annotations

import codecs
import json
import math
import sys
from typing import Any

from nnctl.console import PlainConsole

# piped output is read whole: tables as wide as their cells (rich would cut them at 80 columns, or COLUMNS)
_WIDTH = None if sys.stdout is None or sys.stdout.isatty() else 4096
out = PlainConsole(width=_WIDTH)
err = PlainConsole(stderr=True, width=_WIDTH)


def print_json(data: Any) -> None:
    """`data` as JSON on stdout, each NaN or infinity as null: JSON has no such numbers, and strict readers
    (JavaScript's JSON.parse, Go's encoding/json) refuse the NaN that Python writes. On a stdout that is not
    UTF (cp1252, ascii) other characters are \\u escapes, not the \\x ones JSON has none of."""
    out.out(json.dumps(_finite(data), allow_nan=False, indent=2, ensure_ascii=not stdout_is_utf()), highlight=False)


def stdout_is_utf() -> bool:
    """Whether stdout encodes every character; where not, what it lacks prints as a \\x escape (see
    console.prepare_stdout)."""
    return codecs.lookup(out.encoding).name.startswith("utf")


def _finite(value: Any) -> Any:
    """`value` with every float in it that is NaN or infinite replaced by None, through dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
