"""Approvals then the PIN gate then a real C_Login, in the order `ceremony execute` runs them.

The same officers who sign the plan unlock their cards for the PIN; a plan short of its quorum
stops before the gate, so the token sees no C_Login (counted at the PKCS#11 boundary).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from console.errors import QuorumError
from console.hsm import Hsm
from console.jcs import canonicalize
from console.ledger import OfficerRegistry
from console.quorum import (
    Approval,
    UnlockedCard,
    create_card,
    open_pin,
    require_quorum,
    seal_pin,
    sign_approval,
    unlock_card,
)
from tests.integration.conftest import HsmTarget
from tests.integration.faults import FaultyLib

pytestmark = pytest.mark.hsm

T0 = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
PASSPHRASE = "plum harbor violin seventeen"
OFFICERS = ("alice", "bob", "carol")
PLAN = {"id": "plan-7", "script": "quarterly-rotation", "expires_at": "2027-01-16T10:00:00Z"}


@dataclass(frozen=True, slots=True)
class Entry:
    type: str
    data: dict[str, Any]
    time: datetime
    seq: int = 0


def plan_digest(plan: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonicalize(plan)).digest()


@pytest.fixture(scope="module")
def cards() -> dict[str, UnlockedCard]:
    return {
        n: unlock_card(
            create_card(n, PASSPHRASE, now=T0, unsafe_kdf_cost_for_tests=2**10), PASSPHRASE
        )
        for n in OFFICERS
    }


def execute(
    hsm: Hsm,
    sealed: bytes,
    approvals: Sequence[Approval],
    cards: Sequence[UnlockedCard],
    registry: OfficerRegistry,
) -> None:
    require_quorum(
        plan_digest(PLAN),
        approvals,
        registry,
        need=2,
        now=T0 + timedelta(hours=1),
        expires_at=T0 + timedelta(days=1),
    )
    hsm.login(open_pin(sealed, cards))


def test_quorum_then_gate_then_login(
    hsm_target: HsmTarget, hsm_factory: Callable[..., Hsm], cards: dict[str, UnlockedCard]
) -> None:
    registry = OfficerRegistry.from_entries(
        [Entry("officer.enrolled", cards[n].public.enrollment_data(), T0) for n in OFFICERS]
        + [Entry("officer.revoked", {"name": "carol", "reason": "left"}, T0)]
    )
    sealed = seal_pin(
        hsm_target.user_pin, [(n, cards[n].public.x25519_key()) for n in OFFICERS], 2, now=T0
    )
    lib = FaultyLib.load(hsm_target.module)
    hsm = hsm_factory(hsm_target, login=False, _lib=lib)
    digest = plan_digest(PLAN)
    alice, bob, carol = (cards[n] for n in OFFICERS)

    # Carol is revoked: alice + carol is not a quorum, even though their shares would open.
    short = [sign_approval(alice, digest), sign_approval(carol, digest)]
    with pytest.raises(QuorumError) as info:
        execute(hsm, sealed, short, [alice, carol], registry)
    assert "carol: officer revoked" in info.value.message
    assert lib.calls["C_Login"] == 0

    approvals = [sign_approval(alice, digest), sign_approval(bob, digest)]
    execute(hsm, sealed, approvals, [alice, bob], registry)
    assert lib.calls["C_Login"] == 1 and hsm.logged_in
    assert hsm.generate_keypair("ES256", label="after-quorum").alg == "ES256"
