"""Approvals, the officer registry, quorum counting (readable table), ratification and words."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from Crypto.Signature import eddsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from console.b64 import encode as b64url_encode
from console.errors import ClockError, LedgerTamperedError, OfficerError, QuorumError
from console.jcs import canonicalize
from console.ledger import OfficerRegistry, OfficerStatus
from console.quorum import (
    Approval,
    OfficerPublicKeys,
    RejectReason,
    UnlockedCard,
    approval_message,
    approval_status,
    create_card,
    digest_words,
    grouped_hex,
    require_quorum,
    sign_approval,
    unlock_card,
)
from console.quorum.words import wordlist

T0 = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
EXPIRES = T0 + timedelta(days=1)
PASSPHRASE = "plum harbor violin seventeen"
NAMES = ("alice", "bob", "carol", "dave", "erin")
PLAN: dict[str, Any] = {
    "id": "plan-1", "script": "quarterly-rotation", "created_at": "2027-01-15T10:00:00Z",
    "expires_at": "2027-01-16T10:00:00Z", "actions": [{"step": 1, "action": "generate"}],
}
OTHER_PLAN = {**PLAN, "id": "plan-2"}


_SEQ = iter(range(1, 1 << 30))


@dataclass(frozen=True, slots=True)
class Entry:
    """A ledger entry as the replay functions read it (seq, type, data, time)."""

    type: str
    data: Mapping[str, Any]
    time: datetime = T0
    seq: int = field(default_factory=lambda: next(_SEQ))


def plan_digest(plan: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(canonicalize(plan)).digest()


@pytest.fixture(scope="module")
def cards() -> dict[str, UnlockedCard]:
    return {
        name: unlock_card(
            create_card(name, PASSPHRASE, now=T0, unsafe_kdf_cost_for_tests=2**10), PASSPHRASE
        )
        for name in (*NAMES, "mallory")
    }


def registry_for(
    cards: Mapping[str, UnlockedCard], enrolled: tuple[str, ...], revoked: tuple[str, ...] = ()
) -> OfficerRegistry:
    entries = [Entry("officer.enrolled", cards[n].public.enrollment_data()) for n in enrolled]
    entries += [
        Entry("officer.revoked", {"name": n, "reason": "card lost"}, T0 + timedelta(minutes=5))
        for n in revoked
    ]
    return OfficerRegistry.from_entries(entries)


# --- digest and message --------------------------------------------------------------------


def test_plan_digest_is_sha256_of_canonical_bytes() -> None:
    assert plan_digest(PLAN) == hashlib.sha256(canonicalize(PLAN)).digest()
    reordered = dict(reversed(list(PLAN.items())))
    assert plan_digest(reordered) == plan_digest(PLAN)
    assert plan_digest(OTHER_PLAN) != plan_digest(PLAN)


def test_approval_message_layout() -> None:
    digest = bytes(range(32))
    assert approval_message(digest) == (
        b"key-ceremony-approval/v1\n"
        b"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    )
    with pytest.raises(QuorumError):
        approval_message(digest[:31])


def test_signed_approval_verifies_with_pycryptodome(cards: dict[str, UnlockedCard]) -> None:
    """An independent Ed25519 implementation accepts our approval signature."""
    digest = plan_digest(PLAN)
    approval = sign_approval(cards["alice"], digest, now=NOW)
    assert approval.officer == "alice" and approval.digest == digest.hex()
    assert approval.approved_at == NOW
    key = eddsa.import_public_key(cards["alice"].public.ed25519_public)
    sig = base64.urlsafe_b64decode(approval.signature + "==")
    eddsa.new(key, "rfc8032").verify(approval_message(digest), sig)
    with pytest.raises(ValueError):
        eddsa.new(key, "rfc8032").verify(approval_message(plan_digest(OTHER_PLAN)), sig)


def test_approval_round_trips_through_ledger_data(cards: dict[str, UnlockedCard]) -> None:
    approval = sign_approval(cards["bob"], plan_digest(PLAN))
    data = {"plan_id": "plan-1", **approval.to_dict()}
    assert Approval.from_dict(data) == approval
    broken = Approval.from_dict({"officer": 7, "digest": None})
    assert broken == Approval("", "", "")


# --- the readable table --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One quorum scenario. `approvals` are built by name with a kind (see `build`)."""

    id: str
    need: int
    approvals: tuple[tuple[str, str], ...]
    ok: bool
    reasons: tuple[tuple[str, RejectReason], ...] = ()
    enrolled: tuple[str, ...] = ("alice", "bob", "carol")
    revoked: tuple[str, ...] = ()
    now: datetime = NOW
    extra: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("2-of-3, two valid, passes", 2, (("alice", "valid"), ("bob", "valid")), True),
    Case("2-of-3, all three valid, passes", 2,
         (("alice", "valid"), ("bob", "valid"), ("carol", "valid")), True),
    Case("2-of-3, one valid, fails", 2, (("alice", "valid"),), False),
    Case("2-of-3, no approvals, fails", 2, (), False),
    Case("2-of-3, the same officer twice, fails", 2, (("alice", "valid"), ("alice", "valid")),
         False, (("alice", RejectReason.DUPLICATE),)),
    Case("2-of-3, one card revoked, fails", 2, (("alice", "valid"), ("bob", "valid")), False,
         (("bob", RejectReason.REVOKED),), revoked=("bob",)),
    Case("2-of-3, one revoked but two others valid, passes", 2,
         (("alice", "valid"), ("bob", "valid"), ("carol", "valid")), True,
         (("bob", RejectReason.REVOKED),), revoked=("bob",)),
    Case("2-of-3, unknown officer, fails", 2, (("alice", "valid"), ("mallory", "valid")), False,
         (("mallory", RejectReason.UNKNOWN_OFFICER),)),
    Case("2-of-3, bob's name with mallory's key, fails", 2,
         (("alice", "valid"), ("bob", "foreign-key")), False,
         (("bob", RejectReason.BAD_SIGNATURE),)),
    Case("2-of-3, approval of another plan, fails", 2, (("alice", "valid"), ("bob", "other-plan")),
         False, (("bob", RejectReason.OTHER_PLAN),)),
    Case("2-of-3, digest relabelled to this plan, fails", 2,
         (("alice", "valid"), ("bob", "relabelled")), False,
         (("bob", RejectReason.BAD_SIGNATURE),)),
    Case("2-of-3, truncated signature, fails", 2, (("alice", "valid"), ("bob", "truncated")),
         False, (("bob", RejectReason.MALFORMED),)),
    Case("2-of-3, signature not base64url, fails", 2, (("alice", "valid"), ("bob", "not-b64")),
         False, (("bob", RejectReason.MALFORMED),)),
    Case("2-of-3, uppercase digest, fails", 2, (("alice", "valid"), ("bob", "upper-digest")),
         False, (("bob", RejectReason.MALFORMED),)),
    Case("2-of-3, plan expired before counting, fails", 2,
         (("alice", "valid"), ("bob", "valid")), False,
         (("alice", RejectReason.EXPIRED), ("bob", RejectReason.EXPIRED)), now=EXPIRES),
    Case("2-of-3, one approval recorded after expiry, fails", 2,
         (("alice", "valid"), ("bob", "late")), False, (("bob", RejectReason.EXPIRED),)),
    Case("2-of-3, invalid first then valid from the same officer, passes", 2,
         (("bob", "truncated"), ("bob", "valid"), ("alice", "valid")), True,
         (("bob", RejectReason.MALFORMED),)),
    Case("3-of-3, all valid in reverse order, passes", 3,
         (("carol", "valid"), ("bob", "valid"), ("alice", "valid")), True),
    Case("3-of-3, two valid and a duplicate, fails", 3,
         (("carol", "valid"), ("carol", "valid"), ("alice", "valid")), False,
         (("carol", RejectReason.DUPLICATE),)),
    Case("1-of-2 emergency, one valid, passes", 1, (("alice", "valid"),), True,
         enrolled=("alice", "bob")),
]


def build(cards: Mapping[str, UnlockedCard], name: str, kind: str) -> Approval:
    digest = plan_digest(PLAN)
    good = sign_approval(cards[name], digest, now=NOW)
    if kind == "valid":
        return good
    if kind == "foreign-key":
        return replace(sign_approval(cards["mallory"], digest, now=NOW), officer=name)
    if kind == "other-plan":
        return sign_approval(cards[name], plan_digest(OTHER_PLAN), now=NOW)
    if kind == "relabelled":
        return replace(sign_approval(cards[name], plan_digest(OTHER_PLAN)), digest=digest.hex())
    if kind == "truncated":
        return replace(good, signature=good.signature[:-4])
    if kind == "not-b64":
        return replace(good, signature=good.signature[:-1] + "=")
    if kind == "upper-digest":
        return replace(good, digest=good.digest.upper())
    if kind == "late":
        return replace(good, approved_at=EXPIRES)
    raise AssertionError(kind)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_quorum_table(case: Case, cards: dict[str, UnlockedCard]) -> None:
    registry = registry_for(cards, case.enrolled, case.revoked)
    approvals = [build(cards, name, kind) for name, kind in case.approvals]
    digest = plan_digest(PLAN)
    status = approval_status(
        digest, approvals, registry, need=case.need, now=case.now, expires_at=EXPIRES
    )
    assert status.met is case.ok
    assert {(r.officer, r.reason) for r in status.rejected} == set(case.reasons)
    assert len(status.counted) == len(set(status.counted))
    if case.ok:
        assert require_quorum(
            digest, approvals, registry, need=case.need, now=case.now, expires_at=EXPIRES
        ) == status
    else:
        with pytest.raises(QuorumError) as info:
            require_quorum(
                digest, approvals, registry, need=case.need, now=case.now, expires_at=EXPIRES
            )
        assert info.value.have == status.have and info.value.need == case.need


def test_quorum_error_names_each_rejected_approval(cards: dict[str, UnlockedCard]) -> None:
    registry = registry_for(cards, ("alice", "bob", "carol"))
    approvals = [build(cards, "alice", "valid"), build(cards, "bob", "foreign-key")]
    with pytest.raises(QuorumError) as info:
        require_quorum(plan_digest(PLAN), approvals, registry, need=2, now=NOW, expires_at=EXPIRES)
    assert info.value.message == (
        "approved by 1 of 2 required officers (bob: signature does not verify)"
    )
    assert "ceremony approve" in info.value.hint
    assert (info.value.have, info.value.need) == (1, 2)


def test_expired_plan_hint_names_the_expiry(cards: dict[str, UnlockedCard]) -> None:
    registry = registry_for(cards, ("alice", "bob", "carol"))
    with pytest.raises(QuorumError) as info:
        require_quorum(plan_digest(PLAN), [build(cards, "alice", "valid")], registry, need=1,
                       now=EXPIRES + timedelta(seconds=1), expires_at=EXPIRES)
    assert "2027-01-16T10:00:00Z" in info.value.hint


def test_impossible_quorum_arguments_are_errors(cards: dict[str, UnlockedCard]) -> None:
    registry = registry_for(cards, ("alice", "bob"))
    digest = plan_digest(PLAN)
    for need in (0, -1):
        with pytest.raises(QuorumError, match="impossible"):
            approval_status(digest, [], registry, need=need, now=NOW, expires_at=EXPIRES)
    with pytest.raises(QuorumError, match="no enrolled officer"):
        approval_status(digest, [], OfficerRegistry(), need=1, now=NOW, expires_at=EXPIRES)
    everyone_revoked = registry_for(cards, ("alice",), ("alice",))
    with pytest.raises(QuorumError, match="no enrolled officer"):
        approval_status(digest, [], everyone_revoked, need=1, now=NOW, expires_at=EXPIRES)
    with pytest.raises(QuorumError, match="32 bytes"):
        approval_status(digest[:16], [], registry, need=1, now=NOW, expires_at=EXPIRES)
    with pytest.raises(ClockError):
        approval_status(digest, [], registry, need=1, now=datetime(2027, 1, 15),
                        expires_at=EXPIRES)


# --- registry replay -----------------------------------------------------------------------


def test_registry_replay(cards: dict[str, UnlockedCard]) -> None:
    later = T0 + timedelta(days=3)
    registry = OfficerRegistry.from_entries([
        Entry("workspace.created", {"origin": "x"}),
        Entry("officer.enrolled", cards["alice"].public.enrollment_data()),
        Entry("officer.enrolled", cards["bob"].public.enrollment_data()),
        Entry("key.generated", {"kid": "k"}),
        Entry("officer.revoked", {"name": "bob", "reason": "left the team"}, later),
    ])
    assert [o.name for o in registry.officers] == ["alice", "bob"]
    assert [o.name for o in registry.active()] == ["alice"]
    bob = registry.get("bob")
    assert bob is not None and bob.status is OfficerStatus.REVOKED
    assert bob.revoked_at == later and bob.revoke_reason == "left the team"
    assert bob.enrolled_at == T0 and bob.ed25519 == cards["bob"].public.ed25519_public
    assert registry.require_active("alice").x25519 == cards["alice"].public.x25519_public
    with pytest.raises(OfficerError, match="revoked"):
        registry.require_active("bob")
    with pytest.raises(OfficerError, match="no officer"):
        registry.require_active("carol")


@pytest.mark.parametrize(
    ("label", "entries", "match"),
    [
        ("enrolled twice", [("officer.enrolled", "alice"), ("officer.enrolled", "alice")],
         "twice"),
        ("re-enrolled after revocation", [("officer.enrolled", "alice"),
                                          ("officer.revoked", "alice"),
                                          ("officer.enrolled", "alice")], "twice"),
        ("revoked unknown", [("officer.revoked", "alice")], "not enrolled"),
        ("revoked twice", [("officer.enrolled", "alice"), ("officer.revoked", "alice"),
                           ("officer.revoked", "alice")], "not enrolled and active"),
    ],
)
def test_registry_refuses_inconsistent_ledgers(
    cards: dict[str, UnlockedCard], label: str, entries: list[tuple[str, str]], match: str
) -> None:
    built = [
        Entry(kind, cards[name].public.enrollment_data() if kind == "officer.enrolled"
              else {"name": name, "reason": "test"})
        for kind, name in entries
    ]
    with pytest.raises(LedgerTamperedError, match=match):
        OfficerRegistry.from_entries(built)


def test_registry_refuses_key_reuse_and_malformed_entries(cards: dict[str, UnlockedCard]) -> None:
    reused = {**cards["alice"].public.enrollment_data(), "name": "alice2"}
    with pytest.raises(LedgerTamperedError, match="reuses a key"):
        OfficerRegistry.from_entries([
            Entry("officer.enrolled", cards["alice"].public.enrollment_data()),
            Entry("officer.enrolled", reused),
        ])
    bad = [
        {"name": "alice", "ed25519": "short", "x25519": b64url_encode(bytes(32))},
        {"name": "al ice", **{k: v for k, v in cards["alice"].public.enrollment_data().items()
                              if k != "name"}},
        {"ed25519": b64url_encode(bytes(32)), "x25519": b64url_encode(bytes(32))},
    ]
    for data in bad:
        with pytest.raises(LedgerTamperedError):
            OfficerRegistry.from_entries([Entry("officer.enrolled", data)])
    with pytest.raises(LedgerTamperedError, match="exactly"):
        OfficerRegistry.from_entries([Entry("officer.revoked", {"name": "alice"})])


# --- classes and ratification --------------------------------------------------------------


def test_wordlist_shape() -> None:
    words = wordlist()
    assert len(words) == 256 == len(set(words))
    assert all(w.isalpha() and w.islower() and 3 <= len(w) <= 8 for w in words)
    assert list(words) == sorted(words)


def test_digest_words_and_hex() -> None:
    digest = bytes([0, 1, 255, 128]) + bytes(28)
    words = wordlist()
    assert digest_words(digest, 4) == [words[0], words[1], words[255], words[128]]
    assert digest_words(digest, 4) == ["acorn", "apple", "zebra", "kitten"]
    assert len(digest_words(plan_digest(PLAN))) == 8
    assert digest_words(plan_digest(PLAN)) == digest_words(plan_digest(dict(PLAN)))
    assert digest_words(plan_digest(PLAN)) != digest_words(plan_digest(OTHER_PLAN))
    assert grouped_hex(bytes.fromhex("7f3a19c2ab")) == "7f3a 19c2 ab"
    assert grouped_hex(plan_digest(PLAN)).replace(" ", "") == plan_digest(PLAN).hex()
    with pytest.raises(ValueError):
        digest_words(digest, 0)
    with pytest.raises(ValueError):
        digest_words(digest, 33)


def test_enrollment_fingerprint_changes_with_either_key() -> None:
    a = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    b = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    one = OfficerPublicKeys("alice", a, b)
    assert one.fingerprint() != OfficerPublicKeys("alice", b, a).fingerprint()
    assert one.fingerprint() == OfficerPublicKeys("alice", a, b).fingerprint()
    with pytest.raises(OfficerError):
        OfficerPublicKeys("alice", a[:31], b)
