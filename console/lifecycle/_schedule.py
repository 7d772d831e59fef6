"""Rotation calendar, rollover timeline, gap detection, warnings and the `status --json` shape.

Trust model of a consumer `c` with propagation `p = cache_lifetime + install_delay`:
- it *surely* trusts key `k` from `published_at + p` (by then its cache expired, or its operator
  installed the bundle) until `unpublished_at` (it may refresh the instant the key leaves);
- it *may* trust `k` from `published_at` until `unpublished_at + p` (exposure of a compromised
  key lasts that long).
A token signed at `t` is valid, in real time, over `[t, t + T_tok + S]`. A **gap** is an interval
in which some token signed by the keyset's active key is valid but a consumer does not surely
trust the key: the 401 after a rotation. Tokens of a compromised key are meant to be rejected
after the compromise, and before the keyset's first key was installed nothing validated yet
(genesis), so neither counts as a gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from console.clock import format_duration, format_optional, format_time, require_utc
from console.config import Consumer, KeysetPolicy, Policy
from console.jsontypes import JsonObject
from console.lifecycle._model import Key, KeysetState, KeyState, invariant_problems, short_kid
from console.lifecycle._rules import (
    earliest_activation,
    earliest_destruction,
    earliest_unpublish,
)

S = KeyState


@dataclass(frozen=True, slots=True)
class RotationDue:
    """When a keyset's next rotation is due and the latest safe date for the next ceremony."""

    keyset: str
    active_kid: str | None
    next_due: datetime | None
    overdue: bool
    latest_ceremony: datetime | None
    reason: str

    def to_dict(self) -> JsonObject:
        return {"keyset": self.keyset, "active_kid": self.active_kid,
                "next_due": format_optional(self.next_due), "overdue": self.overdue,
                "latest_ceremony": format_optional(self.latest_ceremony), "reason": self.reason}


def rotation_due(keyset: KeysetState, policy: KeysetPolicy, now: datetime) -> RotationDue:
    """next_due = active key's activated_at + cryptoperiod; latest_ceremony keeps every rule."""
    now = require_utc(now, "now")
    active = keyset.active_key
    if active is None or active.activated_at is None:
        if not keyset.set_up:
            return RotationDue(keyset.name, None, None, False, None,
                               "no signing key yet: run genesis")
        return RotationDue(keyset.name, None, None, True, now,
                           "no active key: run emergency-rotation now")
    due = active.activated_at + policy.cryptoperiod
    lead = policy.c_max + policy.margin
    successors = keyset.successors
    if successors:
        ready = earliest_activation(successors[0], policy)
        if ready <= due:
            latest, reason = due, (f"activate {short_kid(successors[0].kid)} by {format_time(due)}"
                                   f" (allowed from {format_time(ready)})")
        else:
            latest, reason = ready, (f"successor {short_kid(successors[0].kid)} cannot be "
                                     f"activated before {format_time(ready)}, after the "
                                     f"cryptoperiod ends {format_time(due)}")
    else:
        latest = due - lead
        reason = (f"publish a successor by {format_time(latest)} so it can be activated by "
                  f"{format_time(due)} (slowest consumer + margin = {format_duration(lead)})")
    return RotationDue(keyset.name, active.kid, due, now > due, latest, reason)


# --- rollover timeline -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustWindow:
    """When one consumer surely / possibly trusts one key (None: open-ended)."""

    consumer: str
    kid: str
    surely_from: datetime | None
    surely_until: datetime | None
    possibly_from: datetime | None
    possibly_until: datetime | None


def trust_window(key: Key, consumer: Consumer) -> TrustWindow:
    p = consumer.propagation
    published, gone = key.published_at, key.archived_at
    if published is None:
        return TrustWindow(consumer.name, key.kid, None, None, None, None)
    surely_from = published + p
    if gone is not None and gone <= surely_from:
        surely_from_opt: datetime | None = None  # withdrawn before the consumer surely had it
    else:
        surely_from_opt = surely_from
    return TrustWindow(consumer.name, key.kid, surely_from_opt,
                       gone if surely_from_opt is not None else None, published,
                       gone + p if gone is not None else None)


def trusted_keys(keyset: KeysetState, consumer: Consumer, at: datetime) -> frozenset[str]:
    """The kids `consumer` surely trusts at `at`."""
    at = require_utc(at, "at")
    out = set()
    for key in keyset.token_keys:
        w = trust_window(key, consumer)
        if w.surely_from is not None and w.surely_from <= at and (
            w.surely_until is None or at < w.surely_until
        ):
            out.add(key.kid)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Segment:
    """From `start` until `end` (None: open), `consumer` surely trusts `kids`; `signer` signs."""

    consumer: str
    start: datetime
    end: datetime | None
    kids: frozenset[str]
    signer: str | None


def _signer_at(keyset: KeysetState, at: datetime) -> str | None:
    for key in keyset.token_keys:
        for start, end in key.active_intervals():
            if start <= at and (end is None or at < end):
                return key.kid
    return None


def rollover_timeline(keyset: KeysetState, policy: KeysetPolicy) -> dict[str, list[Segment]]:
    """Per consumer, the piecewise-constant set of keys it surely trusts, with the signer."""
    points: set[datetime] = set()
    for key in keyset.token_keys:
        for start, end in key.active_intervals():
            points.add(start)
            if end is not None:
                points.add(end)
        for consumer in policy.consumers:
            w = trust_window(key, consumer)
            points.update(t for t in (w.surely_from, w.surely_until) if t is not None)
    ordered = sorted(points)
    timeline: dict[str, list[Segment]] = {}
    for consumer in policy.consumers:
        segments: list[Segment] = []
        for i, start in enumerate(ordered):
            end = ordered[i + 1] if i + 1 < len(ordered) else None
            kids, signer = trusted_keys(keyset, consumer, start), _signer_at(keyset, start)
            if segments and segments[-1].kids == kids and segments[-1].signer == signer:
                last = segments[-1]
                segments[-1] = Segment(consumer.name, last.start, end, kids, signer)
            else:
                segments.append(Segment(consumer.name, start, end, kids, signer))
        timeline[consumer.name] = segments
    return timeline


@dataclass(frozen=True, slots=True)
class Gap:
    """A window in which valid tokens signed by `kid` are rejected by `consumer`."""

    consumer: str
    kid: str
    start: datetime
    end: datetime | None
    cause: str  # "activated-too-early" | "unpublished-too-early"

    def describe(self) -> str:
        end = format_time(self.end) if self.end is not None else "now"
        what = ("it signed before this consumer surely had it"
                if self.cause == "activated-too-early"
                else "it left the JWKS while tokens it signed were still valid")
        return (f"{self.consumer} rejects valid tokens of {short_kid(self.kid)} from "
                f"{format_time(self.start)} to {end}: {what}")


def rollover_gaps(keyset: KeysetState, policy: KeysetPolicy) -> list[Gap]:
    """Every window in which some consumer would reject a valid token (see module docstring)."""
    validity = policy.max_token_lifetime + policy.clock_skew
    first_activation = min((k.activated_at for k in keyset.token_keys
                            if k.activated_at is not None), default=None)
    gaps: list[Gap] = []
    for key in keyset.token_keys:
        spans = key.active_intervals()
        if not spans:
            continue
        need_start = spans[0][0]
        last_end = spans[-1][1]
        need_end: datetime | None = None if last_end is None else last_end + validity
        if key.compromised_at is not None:
            need_end = key.compromised_at if need_end is None else min(need_end,
                                                                        key.compromised_at)
        genesis = key.activated_at == first_activation
        for consumer in policy.consumers:
            w = trust_window(key, consumer)
            trust_start = w.surely_from
            if trust_start is None:
                gaps.append(Gap(consumer.name, key.kid, need_start, need_end,
                                "activated-too-early"))
                continue
            if need_start < trust_start and not genesis:
                end = trust_start if need_end is None else min(trust_start, need_end)
                if end > need_start:
                    gaps.append(Gap(consumer.name, key.kid, need_start, end,
                                    "activated-too-early"))
            gone = w.surely_until
            if gone is not None and (need_end is None or gone < need_end):
                start = max(gone, need_start)
                if need_end is None or need_end > start:
                    gaps.append(Gap(consumer.name, key.kid, start, need_end,
                                    "unpublished-too-early"))
    return gaps


# --- warnings and status -------------------------------------------------------------------


def _day(when: datetime) -> str:
    return format_time(when)[:10]


def warnings(keysets: Mapping[str, KeysetState], policy: Policy, now: datetime) -> list[str]:
    """Problems worded as actions, e.g. "internal: rotation overdue since 2027-01-12 — run
    quarterly-rotation". Empty when nothing needs doing."""
    now = require_utc(now, "now")
    out: list[str] = []
    for name in sorted(set(keysets) - set(policy.names)):
        if keysets[name].token_keys:
            out.append(f"{name}: keys exist but the policy has no keyset {name} — add "
                       f"[keysets.{name}] to policy.toml")
    for ks_policy in policy.keysets:
        name = ks_policy.name
        keyset = keysets.get(name, KeysetState(name))
        if not keyset.token_keys:
            out.append(f"{name}: no keys yet — run genesis")
            continue
        problems = invariant_problems(keyset)
        for problem in problems:
            action = ("emergency-rotation" if problem == "no active key"
                      else "quarterly-rotation")
            out.append(f"{name}: {problem} — run {action}")
        due = rotation_due(keyset, ks_policy, now)
        if due.next_due is not None and due.overdue:
            out.append(f"{name}: rotation overdue since {_day(due.next_due)} — run "
                       "quarterly-rotation")
        elif due.latest_ceremony is not None and due.next_due is not None:
            if due.latest_ceremony <= now:
                out.append(f"{name}: {due.reason} — run quarterly-rotation now")
            elif due.latest_ceremony < due.next_due:
                out.append(f"{name}: {due.reason} — run quarterly-rotation before "
                           f"{_day(due.latest_ceremony)}")
        for key in keyset.in_state(S.RETIRED):
            ready = earliest_unpublish(key, ks_policy)
            if ready <= now:
                out.append(f"{name}: {short_kid(key.kid)} may be unpublished since "
                           f"{format_time(ready)} — run quarterly-rotation")
        for key in keyset.in_state(S.ARCHIVED, S.COMPROMISED):
            ready = earliest_destruction(key, ks_policy)
            if ready <= now:
                out.append(f"{name}: {short_kid(key.kid)} may be destroyed since "
                           f"{format_time(ready)} — run key-destruction")
        for key in keyset.in_state(S.SUSPENDED):
            since = format_optional(key.suspended_at)
            out.append(f"{name}: {short_kid(key.kid)} suspended since {since} — resume it, "
                       "retire it, or run emergency-rotation")
        for gap in rollover_gaps(keyset, ks_policy):
            if gap.end is None or gap.end > now:
                out.append(f"{name}: {gap.describe()} — push the bundle to {gap.consumer} now")
    return out


def key_json(key: Key, policy: KeysetPolicy | None) -> JsonObject:
    out: JsonObject = {
        "kid": key.kid, "alg": key.alg, "state": key.state.value, "label": key.label,
        "purpose": key.purpose, "cka_id": key.cka_id,
        "created_at": format_time(key.created_at),
        "published_at": format_optional(key.published_at),
        "activated_at": format_optional(key.activated_at),
        "retired_at": format_optional(key.retired_at),
        "archived_at": format_optional(key.archived_at),
        "destroyed_at": format_optional(key.destroyed_at),
        "suspended_at": format_optional(key.suspended_at),
        "compromised_at": format_optional(key.compromised_at),
        "earliest_activation": None, "earliest_unpublish": None, "earliest_destruction": None,
    }
    if policy is not None and key.purpose == "token":
        if key.state is S.PUBLISHED:
            out["earliest_activation"] = format_time(earliest_activation(key, policy))
        elif key.state is S.RETIRED:
            out["earliest_unpublish"] = format_time(earliest_unpublish(key, policy))
        elif key.state in (S.ARCHIVED, S.COMPROMISED):
            out["earliest_destruction"] = format_time(earliest_destruction(key, policy))
    return out


def status_json(keysets: Mapping[str, KeysetState], policy: Policy,
                now: datetime) -> JsonObject:
    """The `ceremony status --json` document (DESIGN.md §10); times RFC 3339 UTC or null."""
    now = require_utc(now, "now")
    names = list(policy.names) + sorted(set(keysets) - set(policy.names))
    out: list[JsonObject] = []
    for name in names:
        keyset = keysets.get(name, KeysetState(name))
        ks_policy = policy.get(name)
        due = rotation_due(keyset, ks_policy, now) if ks_policy is not None else None
        out.append({
            "name": name,
            "alg": ks_policy.alg if ks_policy is not None else None,
            "issuer": ks_policy.issuer if ks_policy is not None else None,
            "keys": [key_json(k, ks_policy) for k in keyset.keys],
            "active_kid": due.active_kid if due is not None else None,
            "next_due": format_optional(due.next_due) if due is not None else None,
            "overdue": due.overdue if due is not None else False,
            "latest_ceremony": format_optional(due.latest_ceremony) if due is not None else None,
            "c_max_seconds": int(ks_policy.c_max / timedelta(seconds=1))
            if ks_policy is not None else None,
        })
    return {"now": format_time(now), "keysets": out, "warnings": warnings(keysets, policy, now)}
