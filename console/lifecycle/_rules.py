"""Timing rules (RFC 7583 carried over to JWKS) and the check every key transition must pass.

- activate no earlier than `published_at + C_max + M` (every consumer has the key before it signs);
- unpublish a retired key no earlier than `signing_ended_at + T_tok + S + M` (every token it
  signed has expired before consumers can forget the key);
- destroy no earlier than `archived_at + W` (a compromised key is archived when compromised,
  because a compromise unpublishes at once).

Two waivers, both deliberate: the first activation of a keyset (genesis: no consumer trusts any
key yet, so nothing that works can break) and `emergency=True` (a compromise or suspension
response: the successor starts signing at once, and consumers that have not yet fetched it
reject its tokens until they do, for up to their propagation time; `plan_emergency` says so).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from console.clock import format_duration, format_time, require_utc
from console.config import KeysetPolicy, slowest_consumer
from console.errors import ClockError, LifecycleError, RehearsalOnlyError, TransitionRefusedError
from console.lifecycle._model import TRANSITIONS, Key, KeysetState, KeyState, short_kid, verb

S = KeyState


def earliest_activation(key: Key, policy: KeysetPolicy) -> datetime:
    """`published_at + C_max + M`. Raises LifecycleError when the key was never published."""
    if key.published_at is None:
        raise LifecycleError(f"{short_kid(key.kid)} was never published",
                             "publish it first; activation counts from publication")
    return key.published_at + policy.c_max + policy.margin


def earliest_unpublish(key: Key, policy: KeysetPolicy) -> datetime:
    """`signing_ended_at + T_tok + S + M` (retired_at for a key retired straight from active)."""
    ended = key.signing_ended_at or key.retired_at
    if ended is None:
        raise LifecycleError(f"{short_kid(key.kid)} has not stopped signing",
                             "retire it first; the grace period counts from retirement")
    return ended + policy.max_token_lifetime + policy.clock_skew + policy.margin


def earliest_destruction(key: Key, policy: KeysetPolicy) -> datetime:
    """`archived_at + W` (a compromised key is archived from its compromise)."""
    if key.archived_at is None:
        raise LifecycleError(f"{short_kid(key.kid)} is still published",
                             "unpublish it first; the wait counts from unpublication")
    return key.archived_at + policy.destruction_wait


def _refuse(what: str, rule: str, why: str, hint: str,
            earliest: datetime | None = None) -> TransitionRefusedError:
    if earliest is not None:
        message = f"{what}: refused until {format_time(earliest)} ({why})"
        hint = hint or f"plan it for {format_time(earliest)} or later"
    else:
        message = f"{what}: refused ({why})"
    return TransitionRefusedError(message, hint, rule=rule, earliest=earliest)


def _activation_why(key: Key, policy: KeysetPolicy) -> str:
    slow = slowest_consumer(policy)
    consumer = (f"slowest consumer {slow.name} {format_duration(slow.propagation)}"
                if slow is not None else "no consumers 0 s")
    assert key.published_at is not None
    return (f"published {format_time(key.published_at)} + {consumer} + margin "
            f"{format_duration(policy.margin)}")


def check_transition(
    keyset: KeysetState,
    kid: str,
    to: KeyState,
    policy: KeysetPolicy,
    now: datetime,
    *,
    paired_with: str | None = None,
    emergency: bool = False,
) -> None:
    """Refuse a transition that breaks the state table, a timing rule or a keyset invariant.

    `paired_with` names the other half of a switch made at the same instant: for an activation,
    the active key that retires (or is suspended/compromised) together with it; for a retirement
    or suspension of the active key, the successor that takes over. `emergency` waives the
    successor's activation delay (see the module docstring).

    Raises:
        TransitionRefusedError: with `rule` and, when waiting helps, `earliest`.
        LifecycleError: the kid is unknown.
    """
    now = require_utc(now, "now")
    key = keyset.key(kid)
    what = f"{verb(key.state, to)} {short_kid(kid)}"
    if to not in TRANSITIONS[key.state]:
        why = (f"a {key.state.value} key never becomes active again" if to is S.ACTIVE
               else f"{key.state.value} → {to.value} is not a legal transition")
        raise _refuse(what, "state-table", why, "see DESIGN.md section 7 for the key states")
    if now < key.last_changed_at:
        raise _refuse(what, "clock", f"{short_kid(kid)} last changed at "
                      f"{format_time(key.last_changed_at)}; time never moves backwards", "",
                      key.last_changed_at)
    if key.purpose != "token":
        # The bundle-signing key is pinned by IdP operators, not fetched from the JWKS: the
        # JWKS timing rules do not apply to it; one active bundle key at a time still does.
        if to is S.ACTIVE and any(k.kid != kid for k in keyset.in_state(S.ACTIVE,
                                                                        purpose=key.purpose)):
            raise _refuse(what, "one-active", "another bundle-signing key is active",
                          "retire it first")
        return
    active = keyset.active_key
    if to is S.ACTIVE:
        if key.state is S.SUSPENDED:
            if active is not None:
                raise _refuse(what, "one-active", f"{short_kid(active.kid)} is active; a "
                              "suspended key resumes only when no other key signs",
                              "retire the suspended key instead")
            return
        if keyset.set_up and not emergency:
            ready = earliest_activation(key, policy)
            if now < ready:
                raise _refuse(what, "activation-delay", _activation_why(key, policy), "", ready)
        if active is not None and active.kid != kid and paired_with != active.kid:
            raise _refuse(what, "one-active", f"{short_kid(active.kid)} is active",
                          f"retire {short_kid(active.kid)} at the same instant "
                          "(quarterly-rotation does this)")
        if active is not None and now < active.last_changed_at:
            raise _refuse(what, "clock", f"{short_kid(active.kid)} last changed at "
                          f"{format_time(active.last_changed_at)}; time never moves backwards",
                          "", active.last_changed_at)
        if active is None and paired_with is not None:
            raise _refuse(what, "paired", f"{short_kid(paired_with)} is not active",
                          "activate without a pair")
        return
    if key.state is S.ACTIVE and to in (S.RETIRED, S.SUSPENDED, S.COMPROMISED):
        if paired_with is None:
            if to is S.COMPROMISED:
                return  # a compromise is always recordable, even if nothing takes over
            candidates = keyset.successors
            earliest = (min(earliest_activation(c, policy) for c in candidates)
                        if candidates else None)
            raise _refuse(what, "successor-required",
                          f"{short_kid(kid)} is the only active key and no successor takes over",
                          "activate a published successor at the same instant, or publish one"
                          " first", earliest if earliest is not None and earliest > now else None)
        check_transition(keyset, paired_with, S.ACTIVE, policy, now, paired_with=kid,
                         emergency=emergency or to is S.COMPROMISED)
        return
    if to is S.ARCHIVED and key.state is S.RETIRED:
        ready = earliest_unpublish(key, policy)
        if now < ready:
            ended = key.signing_ended_at or key.retired_at
            assert ended is not None
            raise _refuse(what, "retirement-grace",
                          f"stopped signing {format_time(ended)} + token lifetime "
                          f"{format_duration(policy.max_token_lifetime)} + clock skew "
                          f"{format_duration(policy.clock_skew)} + margin "
                          f"{format_duration(policy.margin)}", "", ready)
        return
    if to is S.DESTROYED and key.state in (S.ARCHIVED, S.COMPROMISED):
        ready = earliest_destruction(key, policy)
        if now < ready:
            assert key.archived_at is not None
            raise _refuse(what, "destruction-wait",
                          f"unpublished {format_time(key.archived_at)} + destruction wait "
                          f"{format_duration(policy.destruction_wait)}", "", ready)
        return


def effective_now(
    *,
    requested: datetime | None,
    rehearsal: bool,
    last_recorded: datetime | None,
    wall: datetime,
) -> datetime:
    """The time a command acts at (DESIGN.md §7, rehearsal clock).

    `--now` (requested) only in rehearsal workspaces and never before the last recorded time;
    without it, the later of the wall clock and the last recorded time (the clock never moves
    backwards, even when the machine's clock does), except that a production workspace refuses
    a last recorded time more than `CLOCK_AHEAD_LIMIT` ahead of the wall clock.

    Raises:
        RehearsalOnlyError: `--now` in a production workspace.
        ClockError: `--now` earlier than the last recorded time, a production ledger dated
            ahead of the wall clock, or a naive datetime.
    """
    wall = require_utc(wall, "wall clock")
    last = require_utc(last_recorded, "last recorded time") if last_recorded else None
    if requested is not None:
        if not rehearsal:
            raise RehearsalOnlyError("--now is only accepted in rehearsal workspaces",
                                     "drop --now: production ceremonies run at the wall clock")
        requested = require_utc(requested, "--now")
        if last is not None and requested < last:
            raise ClockError(f"--now {format_time(requested)} is earlier than the last recorded "
                             f"time {format_time(last)}",
                             f"give --now {format_time(last)} or later")
        return requested.replace(microsecond=0)
    if last is not None and not rehearsal and last - wall > CLOCK_AHEAD_LIMIT:
        # Adopting it would count time that did not pass (grace periods, destruction waits):
        # an entry dated ahead of this machine is a wrong clock here or an edited ledger.
        raise ClockError(
            f"the ledger's last entry is dated {format_time(last)}, "
            f"{format_duration(last - wall)} ahead of this machine's clock ({format_time(wall)})",
            "set this machine's clock right; if it is right, the ledger was edited: run "
            "`ceremony verify audit` and restore the ledger from a backup")
    now = wall if last is None or wall >= last else last
    return now.replace(microsecond=0)


CLOCK_AHEAD_LIMIT = timedelta(hours=1)
"""How far a production ledger's last entry may be ahead of the wall clock and still be the
clock's floor (a clock stepped back by NTP, a ledger moved from a machine a little ahead)."""
