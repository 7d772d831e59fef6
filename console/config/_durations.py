"""Duration strings of the configuration files: "90d", "20m", "1h30m", "45s".

Units d, h, m, s in that order, whole numbers only: floats and bare integers are refused so that
nobody wonders about the unit. In the canonical dictionary form (`Policy.to_dict`, stored in
`policy.changed` ledger entries) durations are integer seconds, bounded by `MAX_DURATION`.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["MAX_DURATION", "format_duration_text", "parse_duration"]

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
MAX_DURATION = timedelta(days=36500)


def parse_duration(text: str) -> timedelta:
    """Parse "90d", "1h30m", "45s", "0s" into a timedelta.

    Raises:
        ValueError: not a duration in this strict form (the caller turns it into a ConfigError).
    """
    if not isinstance(text, str):
        raise ValueError("not a string")
    m = _DURATION.match(text)
    if not text or m is None:
        raise ValueError(f"{text!r} is not a duration")
    if any(g and len(g) > 9 for g in m.groups()):
        raise ValueError(f"{text!r} is longer than 100 years")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    total = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if total > MAX_DURATION:
        raise ValueError(f"{text!r} is longer than 100 years")
    return total


def format_duration_text(delta: timedelta) -> str:
    """The inverse of `parse_duration`: the shortest text that parses back to `delta`."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        raise ValueError("negative duration")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(
        f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v
    )
    return text or "0s"
