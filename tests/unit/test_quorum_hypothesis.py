"""Quorum fuzz: over 10,000 generated approval sets, the action proceeds iff >= M distinct valid.

Keys and signatures are made once (a pool of approvals, each labelled with whether it is a
valid approval of THE plan by an enrolled, unrevoked officer before expiry); Hypothesis draws
mixtures in any order. The expected answer is computed here in the simplest way: count the
distinct officer names among the pool items labelled good, compare with M.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.b64 import encode as b64url_encode
from console.errors import QuorumError
from console.jcs import canonicalize
from console.ledger import OfficerRegistry
from console.quorum import (
    APPROVAL_CONTEXT,
    Approval,
    QuorumStatus,
    require_quorum,
)

T0 = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
EXPIRES = T0 + timedelta(days=1)
ENROLLED = ("alice", "bob", "carol", "dave")
REVOKED = ("erin",)
UNKNOWN = ("mallory",)
DIGEST = hashlib.sha256(canonicalize({"id": "plan-1", "actions": ["generate"]})).digest()
OTHER = hashlib.sha256(canonicalize({"id": "plan-2", "actions": ["destroy"]})).digest()


@dataclass(frozen=True, slots=True)
class Entry:
    type: str
    data: dict[str, Any]
    time: datetime
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Item:
    approval: Approval
    good: bool
    kind: str


def _build_pool() -> tuple[OfficerRegistry, list[Item]]:
    keys = {n: Ed25519PrivateKey.generate() for n in ENROLLED + REVOKED + UNKNOWN}
    stranger = Ed25519PrivateKey.generate()

    def raw(k: Ed25519PrivateKey) -> str:
        return b64url_encode(k.public_key().public_bytes_raw())

    entries = [
        Entry("officer.enrolled",
              {"name": n, "ed25519": raw(keys[n]), "x25519": raw(Ed25519PrivateKey.generate())},
              T0)
        for n in ENROLLED + REVOKED
    ]
    entries.append(Entry("officer.revoked", {"name": "erin", "reason": "lost"}, T0))
    registry = OfficerRegistry.from_entries(entries)

    def sig(key: Ed25519PrivateKey, digest: bytes) -> str:
        return b64url_encode(key.sign(APPROVAL_CONTEXT + digest.hex().encode()))

    before = T0 + timedelta(hours=1)
    pool: list[Item] = []
    for name in ENROLLED + REVOKED + UNKNOWN:
        valid = Approval(name, DIGEST.hex(), sig(keys[name], DIGEST), before)
        is_officer = name in ENROLLED
        pool += [
            Item(valid, is_officer, "valid"),
            Item(replace(valid, approved_at=None), is_officer, "valid, time unknown"),
            Item(replace(valid, approved_at=EXPIRES), False, "recorded after expiry"),
            Item(replace(valid, approved_at=EXPIRES - timedelta(seconds=1)), is_officer,
                 "recorded just before expiry"),
            Item(Approval(name, OTHER.hex(), sig(keys[name], OTHER), before), False,
                 "another plan"),
            Item(Approval(name, DIGEST.hex(), sig(keys[name], OTHER), before), False,
                 "digest relabelled"),
            Item(Approval(name, DIGEST.hex(), sig(stranger, DIGEST), before), False,
                 "unknown key"),
            Item(replace(valid, signature=valid.signature[:-2]), False, "truncated signature"),
            Item(replace(valid, signature=valid.signature + "AA"), False, "long signature"),
            Item(replace(valid, signature=""), False, "empty signature"),
            Item(replace(valid, signature=valid.signature[:-1] + "!"), False, "bad base64"),
            Item(replace(valid, digest=DIGEST.hex()[:-2]), False, "short digest"),
            Item(replace(valid, digest=DIGEST.hex().upper()), False, "uppercase digest"),
            Item(replace(valid, officer=name.upper()), False, "name in capitals"),
            Item(replace(valid, officer=name + " "), False, "name with a space"),
        ]
        flipped = bytearray(keys[name].sign(APPROVAL_CONTEXT + DIGEST.hex().encode()))
        flipped[10] ^= 0x01
        pool.append(Item(replace(valid, signature=b64url_encode(bytes(flipped))), False,
                         "flipped bit"))
    pool.append(Item(Approval("", DIGEST.hex(), "", None), False, "empty"))
    return registry, pool


REGISTRY, POOL = _build_pool()


def expected(items: list[Item], need: int, now: datetime) -> bool:
    if now >= EXPIRES:
        return False
    return len({item.approval.officer for item in items if item.good}) >= need


@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(
    items=st.lists(st.sampled_from(POOL), max_size=9),
    need=st.integers(min_value=1, max_value=len(ENROLLED)),
    now=st.sampled_from([T0, EXPIRES - timedelta(seconds=1), EXPIRES, EXPIRES + timedelta(1)]),
)
def test_quorum_iff_enough_distinct_valid_approvals(
    items: list[Item], need: int, now: datetime
) -> None:
    approvals = [item.approval for item in items]
    want = expected(items, need, now)
    try:
        status: QuorumStatus | None = require_quorum(
            DIGEST, approvals, REGISTRY, need=need, now=now, expires_at=EXPIRES
        )
    except QuorumError as e:
        assert not want, f"false reject: {e}"
        assert e.need == need and e.have < need
        return
    assert want, f"false accept: {[i.kind + ' ' + i.approval.officer for i in items]}"
    assert status is not None
    assert len(status.counted) == len(set(status.counted)) >= need
    assert set(status.counted) <= set(ENROLLED)
    assert len(status.counted) + len(status.rejected) == len(approvals)


def test_pool_covers_every_kind() -> None:
    """Guard: the pool really mixes good and bad approvals of every advertised kind."""
    kinds = {item.kind for item in POOL}
    assert {"valid", "another plan", "unknown key", "truncated signature", "flipped bit",
            "recorded after expiry", "digest relabelled"} <= kinds
    assert sum(item.good for item in POOL) == 3 * len(ENROLLED)
    revoked_or_unknown = [i for i in POOL if i.approval.officer in REVOKED + UNKNOWN]
    assert revoked_or_unknown and not any(i.good for i in revoked_or_unknown)
