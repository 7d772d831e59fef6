"""A rehearsal year on a real SoftHSM2 token, through the `ceremony` CLI only.

The year itself is `tests.rehearsal.run_year` (also what `make rehearsal` prints): the real
`ceremony demo --headless` (genesis 91 days back, one rotation now), four quarterly rotations
about 91 days apart, an officer change (carol leaves, dave joins; the PIN is re-split), an
emergency rotation ratified by the next routine ceremony, and the destruction of keys past their
wait. `run_year` raises at the first failed check (audit pack, bundle chain, one active key,
PyJWT token windows, ...); this test then asserts on the summary it returns, so that a year that
silently skipped a ceremony or a check cannot pass.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tests.rehearsal import (
    AUDIENCE,
    CHECKS,
    ISSUER,
    RehearsalError,
    YearSummary,
    _replay,
    _verify_token,
    run_year,
)

CEREMONIES = ["genesis (demo)", "rotation (demo)", "rotation Q1", "rotation Q2",
              "officer-change", "rotation Q3", "emergency-rotation", "rotation Q4",
              "key-destruction"]
ROTATIONS = {"rotation (demo)", "rotation Q1", "rotation Q2", "rotation Q3",
             "emergency-rotation", "rotation Q4"}


def assert_a_full_year(summary: YearSummary) -> None:
    """What a year must show, whichever HSM it ran on."""
    rows = summary.rows
    assert [r.ceremony for r in rows] == CEREMONIES
    by = {r.ceremony: r for r in rows}
    assert set(rows[0].checks) == {"bundle", "one active", "PyJWT"}, "genesis, checked afterwards"
    for row in rows[1:]:
        assert set(CHECKS) <= set(row.checks), (row.ceremony, row.checks)
    assert "carol's share refused" in by["officer-change"].checks
    # Times, ledger and bundles only move forward; only key changes export a bundle.
    assert [r.now for r in rows] == sorted(r.now for r in rows)
    assert all(a.ledger_size < b.ledger_size for a, b in itertools.pairwise(rows))
    for before, row in itertools.pairwise(rows):
        if row.ceremony in ROTATIONS:
            assert row.bundle_seq == before.bundle_seq + 1, row.ceremony
            assert row.active_kid != before.active_kid, row.ceremony
        else:
            assert (row.bundle_seq, row.active_kid) == (before.bundle_seq, before.active_kid)
    assert len({r.plan_id for r in rows}) == len(rows)
    # Who cosigned each closing checkpoint: the approving officers.
    # Carol's revocation took effect with the PIN re-split's checkpoint (which she cosigned as
    # an officer still in force); the closing checkpoint counts only officers in force after it.
    assert by["officer-change"].checkpoint_signers == ("alice", "bob")
    assert by["rotation Q3"].checkpoint_signers == ("bob", "dave")
    assert by["emergency-rotation"].checkpoint_signers == ("alice", "dave")
    assert by["key-destruction"].checkpoint_signers == ("alice", "bob", "dave")
    # The emergency compromised Q3's key; the destruction took every unpublished key.
    compromised = by["rotation Q3"].active_kid
    assert by["emergency-rotation"].compromised == (compromised,)
    assert set(by["key-destruction"].destroyed) == {*by["rotation Q4"].archived, compromised}
    assert not by["key-destruction"].archived and not by["key-destruction"].compromised
    # Every key that signed has a token window: verified from its signing on, then refused for
    # good once its key left the JWKS (the compromised one at once, the others a quarter later).
    windows = {w.kid: w for w in summary.windows}
    assert set(windows) == {r.active_kid for r in rows}
    for w in windows.values():
        assert w.verified_after[0] == w.signed_after
    assert windows[compromised].verified_after == ("rotation Q3",)
    assert windows[compromised].refused_after[0] == "emergency-rotation"
    genesis_kid = rows[0].active_kid
    assert windows[genesis_kid].verified_after == ("genesis (demo)", "rotation (demo)")
    assert windows[genesis_kid].refused_after[0] == "rotation Q1"
    assert windows[by["rotation Q4"].active_kid].final_state == "active"
    assert rows[-1].tokens_verified == 2 and rows[-1].tokens_refused == len(windows) - 2


def test_the_year_checks_can_fail() -> None:
    """The token-window and replay checks of the year refuse what they must (no HSM here: a
    software ES256 key signs, the checks do not care who signed)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    kid = "k" * 43
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "rehearsal-kkkkkk"}, key,
                       algorithm="ES256", headers={"kid": kid})
    served = {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "ES256"}]}
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    stranger = {"keys": [{**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(other)),
                          "kid": "s" * 43, "use": "sig", "alg": "ES256"}]}
    _verify_token(token, served, kid, "ES256", served=True)
    _verify_token(token, stranger, kid, "ES256", served=False)
    with pytest.raises(RehearsalError, match="still served"):
        _verify_token(token, served, kid, "ES256", served=False)
    with pytest.raises(RehearsalError, match="verifies with"):  # same key under another kid
        _verify_token(token, {"keys": [{**served["keys"][0], "kid": "x" * 43}]}, kid, "ES256",
                      served=False)
    with pytest.raises(RehearsalError, match="does not verify"):
        _verify_token(token, {"keys": [{**stranger["keys"][0], "kid": kid}]}, kid, "ES256",
                      served=True)
    generated = {"seq": 1, "time": "2027-01-01T00:00:00Z", "type": "key.generated",
                 "ceremony": "p", "data": {"keyset": "demo-api", "kid": kid, "alg": "ES256",
                                           "cka_id": "00"}}
    jump = {"seq": 2, "time": "2027-01-01T00:00:00Z", "type": "key.state_changed",
            "ceremony": "p", "data": {"keyset": "demo-api", "kid": kid, "from": "published",
                                      "to": "active"}}
    with pytest.raises(RehearsalError, match="ledger had it generated"):
        _replay([generated, jump])
    with pytest.raises(RehearsalError, match="generated twice"):
        _replay([generated, generated])


@pytest.mark.hsm
@pytest.mark.slow
def test_a_rehearsal_year(tmp_path: Path) -> None:
    summary = run_year(tmp_path, network=False, report=lambda message: None)
    print(summary.table())
    assert_a_full_year(summary)
    assert summary.outage is None
