"""Times as the console writes and reads them: aware UTC datetimes, RFC 3339 text, whole seconds.

Every time-dependent function in the core takes `now` explicitly; this module only converts and
checks. Naive datetimes are refused everywhere, so a local time can never slip into the ledger.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from console.errors import ClockError

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def require_utc(when: datetime, what: str = "time") -> datetime:
    """Return `when` in UTC; refuse a naive datetime.

    Raises:
        ClockError: `when` has no time zone.
    """
    if when.utcoffset() is None:
        raise ClockError(f"{what} has no time zone", "give times in UTC, e.g. 2027-01-15T10:00:00Z")
    return when.astimezone(UTC)


def parse_time(text: str, what: str = "time") -> datetime:
    """Parse an RFC 3339 time with an explicit offset into an aware UTC datetime (whole seconds).

    Raises:
        ClockError: the text is not RFC 3339 with a zone.
    """
    if not _RFC3339.match(text.strip()):
        raise ClockError(
            f"{what} {text!r} is not an RFC 3339 time with a zone",
            "write it like 2027-01-15T10:00:00Z",
        )
    raw = text.strip().replace("z", "Z").replace("t", "T")
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as e:
        raise ClockError(f"{what} {text!r} is not a valid date", "check the day and month") from e
    return require_utc(parsed, what).replace(microsecond=0)


def format_time(when: datetime) -> str:
    """RFC 3339 UTC with a Z and whole seconds: the only form the console writes."""
    return require_utc(when).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_optional(when: datetime | None) -> str | None:
    return None if when is None else format_time(when)


def wall_clock() -> datetime:
    """The machine's clock, in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def format_duration(delta: timedelta) -> str:
    """A short human form: '3 d 4 h', '20 min', '45 s'."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} d")
    if hours:
        parts.append(f"{hours} h")
    if minutes and not days:
        parts.append(f"{minutes} min")
    if secs and not days and not hours:
        parts.append(f"{secs} s")
    return sign + (" ".join(parts) or "0 s")
