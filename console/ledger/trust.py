"""Who the ledger says may sign, and which checkpoints count (pure: entries in, values out).

This module owns the ONE officer registry: the console (approvals, the PIN gate, checkpoints),
the audit-pack verifier and `officers.json` all replay `officer.*` entries through
`OfficerRegistry.applied`, so they can never disagree about who is an officer.

Entry data (docs/architecture.md):

- `workspace.created` (seq 0 only): `{"origin", "org", "rehearsal": bool}`;
- `config.recorded`: `{"quorum": {"routine"|"destructive"|"emergency": {"m", "n"}}, ...}` (the
  rest of the record is the workspace's configuration digests, read by `console.workspace`);
- `officer.enrolled`: exactly `{"name", "ed25519", "x25519"}` (unpadded base64url of the raw
  32-byte public keys); a name is enrolled once in a ledger's life and a key never twice;
- `officer.revoked`: exactly `{"name", "reason"}`, of an enrolled, unrevoked officer;
- `checkpoint.signed` (entry N): `{"size": N, "root", "note"}`, covering entries `[0, N)`.

The checkpoint rule (DESIGN.md §5), which an auditor can apply with no code of ours:

1. A checkpoint counts only when signed by at least the routine M of the officers *in force*,
   distinct, each signature verifying over the note's text (signatures by other keys, including
   revoked officers, are ignored; a bad signature by an officer in force rejects the note).
2. The officers and the quorum rules in force are those replayed from the entries covered by the
   previous checkpoint that counted. A change of officers or quorum therefore takes effect only
   through a checkpoint signed by M of the *previous* set, as TUF's root rotation works.
3. Genesis: before the first checkpoint there is no previous set; the first checkpoint is judged
   by the officers and quorum its own entries establish (trust on first use: officers compare
   their card fingerprints at `init` and keep the genesis checkpoint as witnesses).

Checkpoints between two changes of the set need no separate check for the console to trust the
ledger (the last one covers them), so `TrustReplay` verifies the first checkpoint after every
change and the last one; `strict=True` (the auditor's verifier) verifies every one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from console.b64 import Base64urlError
from console.b64 import decode as b64url_decode
from console.b64 import encode as b64url_encode
from console.config import Quorum, QuorumRule
from console.errors import ConsoleError, LedgerTamperedError, OfficerError, VerificationError
from console.jsontypes import JsonMapping
from console.ledger.checkpoint import Checkpoint, NoteVerifier, key_id, note_signers, verifier_key
from console.ledger.checkpoint import parse_checkpoint_body as _parse_body
from console.names import check_officer_name, officer_fingerprint

WORKSPACE_CREATED = "workspace.created"
CONFIG_RECORDED = "config.recorded"
ENROLLED = "officer.enrolled"
REVOKED = "officer.revoked"
CHECKPOINT = "checkpoint.signed"
TRUST_ENTRY_TYPES: tuple[str, ...] = (WORKSPACE_CREATED, CONFIG_RECORDED, ENROLLED, REVOKED,
                                      CHECKPOINT)
"""Every entry type `TrustReplay` reads (in seq order, through the ledger's type index)."""
CLASSES: tuple[str, ...] = ("routine", "destructive", "emergency")

__all__ = [
    "CHECKPOINT",
    "CONFIG_RECORDED",
    "ENROLLED",
    "REVOKED",
    "TRUST_ENTRY_TYPES",
    "WORKSPACE_CREATED",
    "Officer",
    "OfficerRegistry",
    "OfficerStatus",
    "Trust",
    "TrustReplay",
    "quorum_from_record",
    "quorum_record",
    "require_checkpoint_quorum",
]


class _EntryLike(Protocol):
    """What the replay reads of an entry (console.ledger.Entry has these attributes)."""

    @property
    def seq(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def data(self) -> object: ...


class OfficerStatus(StrEnum):
    ENROLLED = "enrolled"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Officer:
    """One officer as the ledger records them: raw public keys and current status."""

    name: str
    ed25519: bytes
    x25519: bytes
    status: OfficerStatus
    enrolled_seq: int
    enrolled_at: datetime
    revoked_seq: int | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.status is OfficerStatus.ENROLLED

    def ed25519_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.ed25519)

    def x25519_key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.x25519)

    def fingerprint(self) -> bytes:
        """SHA-256 over both public keys (the value `digest_words` reads aloud)."""
        return officer_fingerprint(self.ed25519, self.x25519)

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(self.ed25519)}

    def verifier_key(self) -> str:
        return verifier_key(self.name, self.ed25519_key())

    def note_verifier(self) -> NoteVerifier:
        key = self.ed25519_key()
        return NoteVerifier(self.name, key_id(self.name, key), key)


def _bad(entry: _EntryLike, what: str) -> LedgerTamperedError:
    return LedgerTamperedError(
        f"ledger entry {entry.seq} ({entry.type}): {what}",
        "no console writes such an entry: restore the ledger from a backup and verify it",
    )


def _key(entry: _EntryLike, data: JsonMapping, name: str, field: str) -> bytes:
    try:
        raw = b64url_decode(data.get(field))
    except Base64urlError as e:
        raise _bad(entry, f"{field} key of {name!r} is not unpadded base64url") from e
    if len(raw) != 32:
        raise _bad(entry, f"{field} key of {name!r} is not 32 bytes")
    try:
        if field == "ed25519":
            Ed25519PublicKey.from_public_bytes(raw)
        else:
            X25519PublicKey.from_public_bytes(raw)
    except ValueError as e:
        raise _bad(entry, f"{field} key of {name!r} is not a valid public key") from e
    return raw


def _exact(entry: _EntryLike, keys: set[str]) -> JsonMapping:
    data = entry.data
    if not isinstance(data, Mapping) or set(data) != keys:
        found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise _bad(entry, f"data must have exactly {sorted(keys)}, has {found}")
    return data


@dataclass(frozen=True, slots=True)
class OfficerRegistry:
    """Every officer ever enrolled, in enrolment order, each with their current status."""

    officers: tuple[Officer, ...] = ()

    def get(self, name: str) -> Officer | None:
        return next((o for o in self.officers if o.name == name), None)

    def active(self) -> tuple[Officer, ...]:
        return tuple(o for o in self.officers if o.active)

    def require_active(self, name: str) -> Officer:
        """The enrolled, unrevoked officer `name`.

        Raises:
            OfficerError: unknown or revoked.
        """
        officer = self.get(name)
        if officer is None:
            raise OfficerError(f"no officer named {name!r} is enrolled",
                               "see `ceremony officer list`")
        if not officer.active:
            raise OfficerError(f"officer {name!r} was revoked", "a revoked card cannot take part")
        return officer

    def verifiers(self) -> list[NoteVerifier]:
        """Signed-note verifier keys of the active officers (revoked keys count as unknown)."""
        return [o.note_verifier() for o in self.active()]

    def applied(self, entry: _EntryLike) -> OfficerRegistry:
        """The registry after `entry` (entries of other types leave it unchanged).

        Raises:
            LedgerTamperedError: the entry is malformed or breaks the registry's rules (naming
                its seq): every reader of the ledger refuses the same entries.
        """
        if entry.type == ENROLLED:
            return self._enrolled(entry)
        if entry.type == REVOKED:
            return self._revoked(entry)
        return self

    def _enrolled(self, entry: _EntryLike) -> OfficerRegistry:
        data = _exact(entry, {"name", "ed25519", "x25519"})
        try:
            name = check_officer_name(data["name"])
        except OfficerError as e:
            raise _bad(entry, e.message) from e
        if self.get(name) is not None:
            raise _bad(entry, f"officer {name!r} is enrolled twice (a new card takes a new name)")
        ed = _key(entry, data, name, "ed25519")
        x = _key(entry, data, name, "x25519")
        if ed == x:
            raise _bad(entry, f"officer {name!r} has the same bytes for both keys")
        for other in self.officers:
            if {ed, x} & {other.ed25519, other.x25519}:
                raise _bad(entry, f"officer {name!r} reuses a key enrolled for {other.name!r}")
        officer = Officer(name, ed, x, OfficerStatus.ENROLLED, entry.seq, entry.time)
        return OfficerRegistry((*self.officers, officer))

    def _revoked(self, entry: _EntryLike) -> OfficerRegistry:
        data = _exact(entry, {"name", "reason"})
        name, reason = data["name"], data["reason"]
        if not isinstance(reason, str) or not reason:
            raise _bad(entry, "reason must be non-empty text")
        current = self.get(name) if isinstance(name, str) else None
        if current is None or not current.active:
            raise _bad(entry, f"officer {name!r} is revoked but not enrolled and active")
        revoked = replace(current, status=OfficerStatus.REVOKED, revoked_seq=entry.seq,
                          revoked_at=entry.time, revoke_reason=reason)
        return OfficerRegistry(tuple(revoked if o.name == name else o for o in self.officers))

    @classmethod
    def from_entries(cls, entries: Iterable[_EntryLike]) -> OfficerRegistry:
        registry = cls()
        for entry in entries:
            registry = registry.applied(entry)
        return registry


def quorum_record(quorum: Quorum) -> dict[str, dict[str, int]]:
    """The `quorum` member of a `config.recorded` entry."""
    return {c: {"m": quorum.for_class(c).m, "n": quorum.for_class(c).n} for c in CLASSES}


def quorum_from_record(entry: _EntryLike) -> Quorum:
    """The quorum rules a `config.recorded` entry sets.

    Raises:
        LedgerTamperedError: the member is missing or impossible.
    """
    rules = entry.data.get("quorum") if isinstance(entry.data, Mapping) else None
    if not isinstance(rules, Mapping) or set(rules) != set(CLASSES):
        raise _bad(entry, "quorum must name routine, destructive and emergency")
    parsed: dict[str, QuorumRule] = {}
    for cls in CLASSES:
        rule = rules[cls]
        if not isinstance(rule, Mapping) or set(rule) != {"m", "n"} or any(
                isinstance(rule[k], bool) or not isinstance(rule[k], int) for k in ("m", "n")):
            raise _bad(entry, f"quorum {cls} must be {{\"m\": M, \"n\": N}}")
        try:
            parsed[cls] = QuorumRule(rule["m"], rule["n"])
        except ConsoleError as e:
            raise _bad(entry, f"quorum {cls}: {e.message}") from e
    return Quorum(parsed["routine"], parsed["destructive"], parsed["emergency"])


def require_checkpoint_quorum(note: str, officers: OfficerRegistry, need: int, *,
                              origin: str) -> Checkpoint:
    """Verify a checkpoint note against the officers in force; return its body and signers.

    Raises:
        VerificationError: malformed note, another origin, a bad signature by an officer in
            force, or fewer than `need` distinct officers in force signed (naming who did).
    """
    verifiers = officers.verifiers()
    if not verifiers:
        raise VerificationError("no officer is in force to sign checkpoints",
                                "the ledger enrols no active officer")
    text, signers = note_signers(note, verifiers)
    if len(signers) < need:
        named = ", ".join(sorted(signers)) or "no officer in force"
        in_force = ", ".join(o.name for o in officers.active())
        raise VerificationError(
            f"checkpoint is signed by {len(signers)} of the {need} officers it needs "
            f"({named}; officers in force: {in_force})",
            "a checkpoint counts only when the routine quorum of the officers in force signs it",
        )
    body = _parse_body(text)
    if body.origin != origin:
        raise VerificationError(f"checkpoint origin {body.origin!r} is not {origin!r}")
    return Checkpoint(body.origin, body.size, body.root, signers, body.extensions)


@dataclass(frozen=True, slots=True)
class Trust:
    """What the checkpointed ledger establishes (the result of `TrustReplay`)."""

    origin: str
    rehearsal: bool | None
    """The flag `workspace.created` fixed at genesis (None: no such entry yet)."""
    officers: OfficerRegistry
    """In force: they count for approvals and must sign the next checkpoint."""
    quorum: Quorum | None
    """In force (None before any `config.recorded`)."""
    config: Mapping[str, Any] | None
    """The `config.recorded` data in force (see `console.sealing`)."""
    checkpoint: Checkpoint | None
    """The last checkpoint (verified), or None when none was recorded yet."""
    checkpoint_seq: int | None
    """The seq of the `checkpoint.signed` entry recording it."""
    pending_officers: OfficerRegistry
    """The replay of every officer entry, covered or not (shown as 'pending' until ratified)."""

    @property
    def covered(self) -> int:
        """How many entries the last checkpoint covers (0 without one)."""
        return 0 if self.checkpoint is None else self.checkpoint.size


class TrustReplay:
    """Feed the `TRUST_ENTRY_TYPES` entries in seq order; `result()` says what they establish.

    Checkpoint entries are judged by `require_checkpoint_quorum` against the officers and quorum
    in force; their `root` must be given by the caller (`check_root`), who owns the tree.
    """

    def __init__(self, origin: str, *, strict: bool = False) -> None:
        self.origin = origin
        self.strict = strict
        self.rehearsal: bool | None = None
        self.pending = OfficerRegistry()
        self.pending_quorum: Quorum | None = None
        self.pending_config: Mapping[str, Any] | None = None
        self.in_force: OfficerRegistry | None = None
        self.in_force_quorum: Quorum | None = None
        self.in_force_config: Mapping[str, Any] | None = None
        self.changed = True  # the set or quorum changed since the last verified checkpoint
        self.last: tuple[_EntryLike, Checkpoint | None] | None = None
        self.verified: list[Checkpoint] = []

    def copy(self) -> TrustReplay:
        """An independent replay in the same state (a write transaction folds into a copy)."""
        twin = TrustReplay(self.origin, strict=self.strict)
        twin.rehearsal = self.rehearsal
        twin.pending, twin.pending_quorum = self.pending, self.pending_quorum
        twin.in_force, twin.in_force_quorum = self.in_force, self.in_force_quorum
        twin.pending_config, twin.in_force_config = self.pending_config, self.in_force_config
        twin.changed, twin.last, twin.verified = self.changed, self.last, list(self.verified)
        return twin

    def apply(self, entry: _EntryLike, *, root: bytes | None = None) -> None:
        """Fold one entry. For a checkpoint entry, `root` is the tree's root at its size.

        Raises:
            LedgerTamperedError: a malformed entry, or a checkpoint that does not count.
        """
        if entry.type == WORKSPACE_CREATED:
            self._created(entry)
        elif entry.type == CONFIG_RECORDED:
            self.pending_quorum = quorum_from_record(entry)
            self.pending_config = entry.data if isinstance(entry.data, Mapping) else None
            self.changed = True
        elif entry.type in (ENROLLED, REVOKED):
            self.pending = self.pending.applied(entry)
            self.changed = True
        elif entry.type == CHECKPOINT:
            self._checkpoint(entry, root)

    def _created(self, entry: _EntryLike) -> None:
        data = entry.data
        if entry.seq != 0:
            raise _bad(entry, "a workspace is created only by its first entry")
        rehearsal = data.get("rehearsal") if isinstance(data, Mapping) else None
        if (not isinstance(data, Mapping) or not isinstance(rehearsal, bool)
                or data.get("origin") != self.origin):
            raise _bad(entry, "needs this ledger's origin and a rehearsal flag")
        self.rehearsal = rehearsal

    def _checkpoint(self, entry: _EntryLike, root: bytes | None) -> None:
        data = entry.data
        if not isinstance(data, Mapping) or data.get("size") != entry.seq or not isinstance(
                data.get("note"), str) or not isinstance(data.get("root"), str):
            raise _bad(entry, "a checkpoint entry records the note of the entries before it")
        if self.changed or self.strict or root is not None:
            self._verify(entry, root)
        else:
            self.last = (entry, None)

    def _verify(self, entry: _EntryLike, root: bytes | None) -> Checkpoint:
        established = self.in_force is not None
        officers = self.in_force if self.in_force is not None else self.pending
        quorum = self.in_force_quorum if established else self.pending_quorum
        if quorum is None:
            raise _bad(entry, "no quorum rule was recorded before this checkpoint")
        try:
            data = entry.data
            note = data.get("note") if isinstance(data, Mapping) else None
            cp = require_checkpoint_quorum(str(note), officers, quorum.routine.m,
                                           origin=self.origin)
        except VerificationError as e:
            raise LedgerTamperedError(
                f"checkpoint at entry {entry.seq} does not count: {e.message}",
                "restore the ledger from a backup, or open it with the checkpoint an officer "
                "kept (--expect-checkpoint FILE)",
            ) from e
        if cp.size != entry.seq:
            raise _bad(entry, f"its note covers {cp.size} entries, not {entry.seq}")
        if root is None or cp.root != root:
            raise LedgerTamperedError(
                f"checkpoint at entry {entry.seq} does not match the tree of the entries before"
                " it", "an entry was altered after it was checkpointed: restore from a backup")
        self.in_force = self.pending
        self.in_force_quorum = self.pending_quorum
        self.in_force_config = self.pending_config
        self.changed = False
        self.last = (entry, cp)
        self.verified.append(cp)
        return cp

    def needs_root(self, entry: _EntryLike) -> bool:
        """Whether `apply(entry)` will check the tree root (so the caller must compute it)."""
        return entry.type == CHECKPOINT and (self.changed or self.strict)

    def result(self, *, last_root: bytes | None = None) -> Trust:
        """What the replay establishes; verifies the last checkpoint if it was not yet.

        Raises:
            LedgerTamperedError: the last checkpoint does not count.
        """
        checkpoint: Checkpoint | None = None
        seq: int | None = None
        if self.last is not None:
            entry, checkpoint = self.last
            seq = entry.seq
            if checkpoint is None:
                checkpoint = self._verify(entry, last_root)
        established = self.in_force is not None
        officers = self.in_force if self.in_force is not None else self.pending
        quorum = self.in_force_quorum if established else self.pending_quorum
        config = self.in_force_config if established else self.pending_config
        return Trust(self.origin, self.rehearsal, officers, quorum, config, checkpoint, seq,
                     self.pending)
