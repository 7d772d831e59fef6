"""`load_public_jwk` remembers keys it accepted: by their exact members, never a refusal."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from console.exports._keys import JwkProblem, jwk_members, load_public_jwk

ES = frozenset({"ES256"})


def _jwk() -> dict[str, str]:
    members = jwk_members(ec.generate_private_key(ec.SECP256R1()).public_key())
    return {**members, "alg": "ES256", "use": "sig"}


def test_the_same_members_give_the_same_key_and_a_change_is_checked_again() -> None:
    jwk = _jwk()
    first = load_public_jwk(jwk, allowed_algs=ES)
    assert load_public_jwk(dict(reversed(list(jwk.items()))), allowed_algs=ES) is first
    jwk["x"] = _jwk()["x"]  # the caller's dict changed after the call: another point
    with pytest.raises(JwkProblem, match="not on P-256"):
        load_public_jwk(jwk, allowed_algs=ES)


def test_a_refusal_is_never_remembered_and_the_rules_are_part_of_the_key() -> None:
    jwk = _jwk()
    with pytest.raises(JwkProblem, match="not allowed"):
        load_public_jwk(jwk, allowed_algs=frozenset({"RS256"}))
    assert load_public_jwk(jwk, allowed_algs=ES).alg == "ES256"
    with pytest.raises(JwkProblem, match="not allowed"):
        load_public_jwk(jwk, allowed_algs=frozenset({"RS256"}))
    bad = {**jwk, "d": "AAAA"}
    for _ in range(2):
        with pytest.raises(JwkProblem, match="private member"):
            load_public_jwk(bad, allowed_algs=ES)
