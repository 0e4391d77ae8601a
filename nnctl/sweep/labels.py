"""A sweep member's run name, made from its group and grid values."""

import re
from typing import Any

from nnctl.config import MAX_NAME


def member_label(group: str, values: dict[str, Any], fallback: str) -> str:
    """A member's run name: its group and values ('plain_sgd_0.1'), else `fallback`; one that would start with
    a sign or a dot starts with the first key ('seed_-42'); cut to MAX_NAME characters."""
    label = "_".join(p for p in [group, *(short(v, k) for k, v in values.items())] if p) or fallback
    if not label[0].isalnum():  # only a value's part can: a group is a run name
        key = _key_part(next(iter(values)))
        label = f"{key if key[:1].isalnum() else fallback}_{label}"
    return label[:MAX_NAME]


def short(value: Any, key: str) -> str:
    """A grid value as part of a run name: 'adam', '0.01', '-42'; a mapping's type or the key's last part."""
    if isinstance(value, dict):
        value = value.get("type", str(key).split(".")[-1])
    text = f"{value:.4g}" if isinstance(value, float) and len(str(value)) > 8 else str(value)  # a drawn value
    return _cleaned(text) or _key_part(key)


def _key_part(key: str) -> str:
    """A grid key's last part ('optimizer.lr' -> 'lr') as part of a run name."""
    return _cleaned(str(key).split(".")[-1])


def _cleaned(text: str) -> str:
    """`text` with only the characters a run name may hold, and no '..'."""
    return re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]", "", text))


def distinct_labels(labels: list[str]) -> list[str]:
    """`labels` made distinct, in order: a repeat (values that read the same, such as 'a/b' and 'ab', or two
    draws of 0.012341 and 0.012344) gets the first free suffix -2, -3, ...: '0.01234', '0.01234-2'."""
    given, used, distinct = set(labels), set(), []
    for label in labels:
        name, count = label, 1
        while name in used or (count > 1 and name in given):
            count += 1
            name = f"{label[:MAX_NAME - len(str(count)) - 1]}-{count}"
        used.add(name)
        distinct.append(name)
    return distinct
