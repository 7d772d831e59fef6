"""Reconciliation's classification table: every HSM object and every live ledger key, one case a
row (pure: inventories and keysets built here, no token)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from console.ceremony.reconcile import Reconciliation, reconcile
from console.hsm.values import HsmObject
from console.lifecycle import Key, KeysetState, KeyState

T0 = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)


def _key(kid: str, cka_id: str, state: KeyState = KeyState.ACTIVE) -> Key:
    return Key(keyset="api", kid=kid, alg="ES256", label=f"label-{kid}", cka_id=cka_id,
               purpose="token", jwk={}, state=state, created_at=T0)


def _pair(cka_id: str, *, classes: tuple[str, ...] = ("public key", "private key"),
          label: str = "label") -> list[HsmObject]:
    return [HsmObject(label, bytes.fromhex(cka_id), c, "EC", "P-256", ()) for c in classes]


@dataclass(frozen=True)
class Case:
    id: str
    inventory: list[HsmObject]
    keys: tuple[Key, ...]
    token_kids: dict[str, str] | None
    kinds: list[str]
    critical: bool = False


A, B = "aa" * 16, "bb" * 16
CASES = [
    Case("known key, same material", _pair(A), (_key("kid-a", A),), {A: "kid-a"}, []),
    Case("a key the ledger does not know", _pair(A) + _pair(B), (_key("kid-a", A),), None,
         ["unknown"]),
    Case("active key missing from the token", [], (_key("kid-a", A),), None, ["missing"],
         critical=True),
    Case("published key missing", [], (_key("kid-a", A, KeyState.PUBLISHED),), None,
         ["missing"]),
    Case("private half gone", _pair(A, classes=("public key",)), (_key("kid-a", A),), None,
         ["incomplete"], critical=True),
    Case("destroyed key back on the token", _pair(A), (_key("kid-a", A, KeyState.DESTROYED),),
         None, ["destroyed-present"], critical=True),
    Case("the ledger records other key material (forged key.generated or swapped object)",
         _pair(A), (_key("kid-a", A),), {A: "kid-of-another-key"}, ["mismatch"],
         critical=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_classification(case: Case) -> None:
    report: Reconciliation = reconcile(case.inventory, {"api": KeysetState("api", case.keys)},
                                       {}, private_visible=True, token_kids=case.token_kids)
    assert [f.kind for f in report.findings] == case.kinds
    assert report.clean is (not case.kinds)
    assert any(f.critical for f in report.findings) is case.critical


def test_without_login_only_public_objects_are_compared() -> None:
    report = reconcile(_pair(A, classes=("public key",)), {"api": KeysetState("api", (
        _key("kid-a", A),))}, {}, private_visible=False)
    assert report.clean


def test_mismatch_is_not_counted_as_known() -> None:
    key = _key("kid-a", A)
    report = reconcile(_pair(A), {"api": KeysetState("api", (key, replace(
        _key("kid-b", B), state=KeyState.PUBLISHED)))}, {}, private_visible=True,
        token_kids={A: "other"})
    assert report.known == 0
    assert {f.kind for f in report.findings} == {"mismatch", "missing"}
