"""Key states, the legal transitions between them, and key records replayed from the ledger.

The ledger is the truth: `replay` folds `key.generated`, `key.state_changed` and `policy.changed`
entries into immutable `KeysetState` values and refuses a history that could not have happened
(a `from` state that does not match, an illegal transition, a kid reused with other material).
Nothing here reads a clock, a file or the HSM.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from console import b64, jose
from console.clock import require_utc
from console.config import Policy
from console.errors import ConfigError, LifecycleError, UnknownAlgorithmError
from console.jcs import canonicalize
from console.jsontypes import JsonMapping


class KeyState(StrEnum):
    """DESIGN.md §7: main line generated → published → active → retired → archived → destroyed."""

    GENERATED = "generated"
    PUBLISHED = "published"
    ACTIVE = "active"
    RETIRED = "retired"
    ARCHIVED = "archived"
    DESTROYED = "destroyed"
    SUSPENDED = "suspended"
    COMPROMISED = "compromised"


S = KeyState
# Why each edge exists:
# - published → archived: withdraw a successor that never signed (no token can carry its kid,
#   so no grace is owed).
# - suspended → active: resume after an investigation cleared the key; it was never retired.
# - compromised from every live state (and archived): a compromise must always be recordable.
#   A compromised key is unpublished at once, so it counts as archived from that instant.
# - generated → destroyed: an abandoned key that was never published (NIST SP 800-57 T2).
# Nothing reaches active from retired, archived, compromised or destroyed.
TRANSITIONS: Mapping[KeyState, frozenset[KeyState]] = MappingProxyType({
    S.GENERATED: frozenset({S.PUBLISHED, S.DESTROYED, S.COMPROMISED}),
    S.PUBLISHED: frozenset({S.ACTIVE, S.ARCHIVED, S.COMPROMISED}),
    S.ACTIVE: frozenset({S.RETIRED, S.SUSPENDED, S.COMPROMISED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.RETIRED, S.COMPROMISED}),
    S.RETIRED: frozenset({S.ARCHIVED, S.COMPROMISED}),
    S.ARCHIVED: frozenset({S.DESTROYED, S.COMPROMISED}),
    S.COMPROMISED: frozenset({S.DESTROYED}),
    S.DESTROYED: frozenset(),
})
NEVER_ACTIVE_AGAIN = frozenset({S.RETIRED, S.ARCHIVED, S.COMPROMISED, S.DESTROYED})
# States in which a key is in the published JWKS.
PUBLISHED_STATES = frozenset({S.PUBLISHED, S.ACTIVE, S.RETIRED, S.SUSPENDED})

VERB: Mapping[tuple[KeyState, KeyState], str] = MappingProxyType({
    (S.GENERATED, S.PUBLISHED): "publish",
    (S.GENERATED, S.DESTROYED): "abandon",
    (S.PUBLISHED, S.ACTIVE): "activate",
    (S.PUBLISHED, S.ARCHIVED): "withdraw",
    (S.ACTIVE, S.RETIRED): "retire",
    (S.ACTIVE, S.SUSPENDED): "suspend",
    (S.SUSPENDED, S.ACTIVE): "resume",
    (S.SUSPENDED, S.RETIRED): "retire",
    (S.RETIRED, S.ARCHIVED): "unpublish",
    (S.ARCHIVED, S.DESTROYED): "destroy",
    (S.COMPROMISED, S.DESTROYED): "destroy",
})


def verb(src: KeyState, dst: KeyState) -> str:
    if dst is S.COMPROMISED:
        return "compromise"
    return VERB.get((src, dst), f"move {src.value}→{dst.value}")


def short_kid(kid: str) -> str:
    return kid if len(kid) <= 8 else kid[:6] + "…"


class LedgerEntry(Protocol):
    """What replay needs from a ledger entry (console.ledger.Entry satisfies it)."""

    @property
    def seq(self) -> int: ...

    @property
    def type(self) -> str: ...

    @property
    def time(self) -> datetime: ...

    @property
    def data(self) -> JsonMapping: ...


PUBLIC_JWK_MEMBERS = jose.JWK_COMMON_MEMBERS.union(*jose.JWK_KEY_MEMBERS.values())


def jwk_thumbprint(jwk: JsonMapping) -> str:
    """RFC 7638 SHA-256 thumbprint (base64url): the kid every key must carry.

    Raises:
        LifecycleError: the JWK lacks a required member or has an unknown kty.
    """
    members = next((m for kty, m in jose.THUMBPRINT_MEMBERS.items() if jwk.get("kty") == kty), None)
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise LifecycleError(f"public JWK has kty {jwk.get('kty')!r} or misses members",
                             "record the key's full public JWK")
    digest = hashlib.sha256(canonicalize({m: jwk[m] for m in members})).digest()
    return b64.encode(digest)


@dataclass(frozen=True, slots=True)
class Key:
    """One key's record, as replayed from the ledger. Times are aware UTC or None."""

    keyset: str
    kid: str
    alg: str
    label: str
    cka_id: str
    purpose: str
    jwk: JsonMapping
    state: KeyState
    created_at: datetime
    published_at: datetime | None = None
    activated_at: datetime | None = None
    retired_at: datetime | None = None
    archived_at: datetime | None = None  # unpublished (a compromise unpublishes at once)
    destroyed_at: datetime | None = None
    suspended_at: datetime | None = None
    compromised_at: datetime | None = None
    signing_ended_at: datetime | None = None  # last time the key stopped being active
    reason: str = ""
    history: tuple[tuple[KeyState, datetime], ...] = field(default=())

    @property
    def last_changed_at(self) -> datetime:
        return self.history[-1][1] if self.history else self.created_at

    @property
    def unpublished_at(self) -> datetime | None:
        return self.archived_at

    @property
    def is_published(self) -> bool:
        return self.state in PUBLISHED_STATES

    def active_intervals(self) -> list[tuple[datetime, datetime | None]]:
        """The spans in which the key signed (None end: still signing)."""
        spans: list[tuple[datetime, datetime | None]] = []
        start: datetime | None = None
        for state, when in self.history:
            if state is S.ACTIVE:
                start = when
            elif start is not None:
                spans.append((start, when))
                start = None
        if start is not None:
            spans.append((start, None))
        return spans

    def moved(self, to: KeyState, at: datetime, reason: str = "") -> Key:
        """This key after the transition to `to` at `at` (table-checked, no timing rules).

        Raises:
            LifecycleError: the transition is not in TRANSITIONS.
        """
        if to not in TRANSITIONS[self.state]:
            raise LifecycleError(
                f"{short_kid(self.kid)}: {self.state.value} → {to.value} is not a legal transition",
                "see DESIGN.md section 7 for the key states",
            )
        at = require_utc(at)
        changes: dict[str, Any] = {"state": to, "reason": reason,
                                   "history": (*self.history, (to, at))}
        if to is S.PUBLISHED:
            changes["published_at"] = at
        elif to is S.ACTIVE:
            if self.activated_at is None:
                changes["activated_at"] = at
            changes["signing_ended_at"] = None
        elif to is S.RETIRED:
            changes["retired_at"] = at
        elif to is S.ARCHIVED:
            changes["archived_at"] = at
        elif to is S.DESTROYED:
            changes["destroyed_at"] = at
        elif to is S.SUSPENDED:
            changes["suspended_at"] = at
        elif to is S.COMPROMISED:
            changes["compromised_at"] = at
            if self.archived_at is None:
                changes["archived_at"] = at
        if self.state is S.ACTIVE:
            changes["signing_ended_at"] = at
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class KeysetState:
    """Every key of one keyset, in generation order."""

    name: str
    keys: tuple[Key, ...] = ()

    @property
    def token_keys(self) -> tuple[Key, ...]:
        return tuple(k for k in self.keys if k.purpose == "token")

    def key(self, kid: str) -> Key:
        for k in self.keys:
            if k.kid == kid:
                return k
        raise LifecycleError(f"no key {short_kid(kid)} in keyset {self.name}",
                             "check the kid with `ceremony status`")

    def in_state(self, *states: KeyState, purpose: str = "token") -> tuple[Key, ...]:
        return tuple(k for k in self.keys if k.state in states and k.purpose == purpose)

    @property
    def active_key(self) -> Key | None:
        active = self.in_state(S.ACTIVE)
        return active[0] if active else None

    @property
    def successors(self) -> tuple[Key, ...]:
        """Published, never-active token keys, oldest publication first."""
        keys = self.in_state(S.PUBLISHED)
        return tuple(sorted(keys, key=lambda k: (k.published_at or k.created_at)))

    @property
    def set_up(self) -> bool:
        """True once any token key has been activated (genesis is done)."""
        return any(k.activated_at is not None for k in self.token_keys)

    @property
    def last_time(self) -> datetime | None:
        return max((k.last_changed_at for k in self.keys), default=None)

    def with_key(self, key: Key) -> KeysetState:
        keys = tuple(key if k.kid == key.kid else k for k in self.keys)
        if key.kid not in {k.kid for k in self.keys}:
            keys = (*keys, key)
        return replace(self, keys=keys)

    def moved(self, kid: str, to: KeyState, at: datetime, reason: str = "") -> KeysetState:
        return self.with_key(self.key(kid).moved(to, at, reason))


@dataclass(frozen=True, slots=True)
class Replay:
    """Everything lifecycle needs from a ledger."""

    keysets: Mapping[str, KeysetState]
    policy: Policy | None
    last_time: datetime | None


def _entry_error(entry: LedgerEntry, what: str) -> LifecycleError:
    return LifecycleError(f"ledger entry {entry.seq} ({entry.type}): {what}",
                          "the ledger history is inconsistent: run `ceremony verify audit`")


def _text(entry: LedgerEntry, data: JsonMapping, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _entry_error(entry, f"{key!r} is missing or not a string")
    return value


def _new_key(entry: LedgerEntry, data: JsonMapping) -> Key:
    keyset = _text(entry, data, "keyset")
    kid = _text(entry, data, "kid")
    alg = _text(entry, data, "alg")
    purpose = _text(entry, data, "purpose")
    if purpose not in ("token", "bundle"):
        raise _entry_error(entry, f"purpose {purpose!r} is not token or bundle")
    jwk = data.get("jwk")
    if not isinstance(jwk, Mapping):
        raise _entry_error(entry, "jwk is missing")
    private = sorted(set(jwk) - PUBLIC_JWK_MEMBERS)
    if private:
        raise _entry_error(entry, f"jwk carries non-public members {', '.join(private)}")
    try:
        spec = jose.algorithm(alg)
    except UnknownAlgorithmError as e:
        raise _entry_error(entry, f"alg {alg!r} is not a keyset algorithm") from e
    if jwk.get("kty") != spec.kty or (spec.curve is not None and jwk.get("crv") != spec.curve):
        raise _entry_error(entry, f"jwk kty/crv do not match alg {alg}")
    try:
        thumbprint = jwk_thumbprint(jwk)
    except LifecycleError as e:
        raise _entry_error(entry, e.message) from e
    if thumbprint != kid:
        raise _entry_error(entry, f"kid {short_kid(kid)} is not the RFC 7638 thumbprint "
                           f"of its jwk ({short_kid(thumbprint)})")
    return Key(keyset=keyset, kid=kid, alg=alg, label=str(data.get("label", "")),
               cka_id=str(data.get("cka_id", "")), purpose=purpose,
               jwk=MappingProxyType(dict(jwk)), state=S.GENERATED,
               created_at=require_utc(entry.time, f"entry {entry.seq} time"),
               history=((S.GENERATED, require_utc(entry.time)),))


def replay(entries: Iterable[LedgerEntry]) -> Replay:
    """Fold ledger entries into keyset states and the current policy.

    Raises:
        LifecycleError: a history that could not have happened, naming the entry's seq.
        ConfigError: a `policy.changed` entry holds an invalid policy.
    """
    keysets: dict[str, KeysetState] = {}
    where: dict[str, str] = {}  # kid -> keyset
    policy: Policy | None = None
    last_time: datetime | None = None
    for entry in entries:
        when = require_utc(entry.time, f"entry {entry.seq} time")
        last_time = when if last_time is None or when > last_time else last_time
        data = entry.data
        if entry.type == "key.generated":
            key = _new_key(entry, data)
            if key.kid in where:
                old = keysets[where[key.kid]].key(key.kid)
                if dict(old.jwk) != dict(key.jwk):
                    raise _entry_error(entry, f"kid {short_kid(key.kid)} reappears with other "
                                       "key material")
                raise _entry_error(entry, f"kid {short_kid(key.kid)} was generated before")
            where[key.kid] = key.keyset
            state = keysets.get(key.keyset, KeysetState(key.keyset))
            keysets[key.keyset] = state.with_key(key)
        elif entry.type == "key.state_changed":
            keyset_name = _text(entry, data, "keyset")
            kid = _text(entry, data, "kid")
            if where.get(kid) != keyset_name:
                raise _entry_error(entry, f"no key {short_kid(kid)} in keyset {keyset_name}")
            try:
                src, dst = KeyState(str(data.get("from"))), KeyState(str(data.get("to")))
            except ValueError as e:
                raise _entry_error(entry, "from/to is not a key state") from e
            state = keysets[keyset_name]
            key = state.key(kid)
            if key.state is not src:
                raise _entry_error(entry, f"{short_kid(kid)} is {key.state.value}, "
                                   f"not {src.value}")
            if when < key.last_changed_at:
                raise _entry_error(entry, f"{short_kid(kid)} changes state before its "
                                   "previous change")
            try:
                moved = key.moved(dst, when, str(data.get("reason", "")))
            except LifecycleError as e:
                raise _entry_error(entry, e.message) from e
            keysets[keyset_name] = state.with_key(moved)
        elif entry.type == "policy.changed":
            raw = data.get("policy")
            if not isinstance(raw, Mapping):
                raise _entry_error(entry, "policy is missing")
            try:
                policy = Policy.from_dict(raw, where=f"ledger entry {entry.seq} policy")
            except ConfigError as e:
                raise _entry_error(entry, e.user_message()) from e
    return Replay(keysets=MappingProxyType(keysets), policy=policy, last_time=last_time)


def replay_keys(entries: Iterable[LedgerEntry]) -> dict[str, KeysetState]:
    """The keyset states alone (see `replay`)."""
    return dict(replay(entries).keysets)


def invariant_problems(keyset: KeysetState) -> list[str]:
    """Every broken lifecycle invariant of a keyset, worded for a person (empty when sound)."""
    problems: list[str] = []
    active = keyset.in_state(S.ACTIVE)
    if len(active) > 1:
        names = ", ".join(short_kid(k.kid) for k in active)
        problems.append(f"{len(active)} active keys ({names})")
    if keyset.set_up and not active:
        problems.append("no active key")
    if keyset.set_up and not keyset.successors:
        problems.append("no published successor")
    seen: dict[str, Key] = {}
    for key in keyset.keys:
        if key.kid in seen:
            problems.append(f"kid {short_kid(key.kid)} appears twice")
        seen[key.kid] = key
        ended = False
        for state, _ in key.history:
            if state in NEVER_ACTIVE_AGAIN:
                ended = True
            elif state is S.ACTIVE and ended:
                problems.append(f"{short_kid(key.kid)} returned to active")
    bundle_active = keyset.in_state(S.ACTIVE, purpose="bundle")
    if len(bundle_active) > 1:
        problems.append(f"{len(bundle_active)} active bundle-signing keys")
    return problems


def check_invariants(keyset: KeysetState) -> None:
    """Raises LifecycleError naming every broken invariant of the keyset."""
    problems = invariant_problems(keyset)
    if problems:
        raise LifecycleError(f"keyset {keyset.name}: {'; '.join(problems)}",
                             "run quarterly-rotation (or emergency-rotation) to restore it")
