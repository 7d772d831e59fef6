"""Tokens signed in the HSM verify with PyJWT against the exported jwks.json, through a rotation.

The active key signs a JWT inside the SoftHSM2 token; PyJWT (a library we did not write)
verifies it against the bundle's jwks.json with the algorithm pinned. After the next rotation
the key is retired but still served (its grace), so the token still verifies; after the one
after, the key is unpublished and the token no longer verifies against the served keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from tests.integration.ceremony_helpers import (
    after,
    clone,
    export_dirs,
    keys_in,
    keyset,
    make_demo,
    ok,
    sign_jwt,
    status,
)

pytestmark = pytest.mark.hsm

ISSUER = "https://demo.example/api"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield make_demo(tmp_path_factory.mktemp("pyjwt") / "demo")


def _jwks(ws: Path) -> jwt.PyJWKSet:
    return jwt.PyJWKSet.from_dict(json.loads((export_dirs(ws)[-1] / "jwks.json").read_text()))


def _decode(token: str, keys: jwt.PyJWKSet) -> dict[str, object]:
    kid = jwt.get_unverified_header(token)["kid"]
    claims: dict[str, object] = jwt.decode(token, keys[kid], algorithms=["ES256"],
                                           issuer=ISSUER, audience="orders")
    return claims


def test_hsm_token_verifies_with_pyjwt_through_grace_then_not(demo: Path,
                                                               tmp_path: Path) -> None:
    ws = clone(demo, tmp_path / "ws")
    kid = keyset(status(ws))["active_kid"]
    # PyJWT checks exp against the real clock; the rehearsal clock only drives the ceremonies.
    claims = {"iss": ISSUER, "aud": "orders", "sub": "user-17", "iat": int(time.time()),
              "exp": int(time.time()) + 3600}
    token = sign_jwt(ws, kid, claims)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": kid, "typ": "JWT"}

    keys = _jwks(ws)
    assert _decode(token, keys)["sub"] == "user-17"
    # A token altered after signing, or verified under another algorithm, is refused.
    head, _, sig = token.split(".")
    forged_body = jwt.utils.base64url_encode(json.dumps({**claims, "sub": "admin"}).encode())
    with pytest.raises(jwt.InvalidSignatureError):
        _decode(f"{head}.{forged_body.decode()}.{sig}", keys)
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(token, keys[kid], algorithms=["RS256"], audience="orders")

    # Next rotation: the key retires but stays in the JWKS through its grace.
    ok(ws, "run", "quarterly-rotation", "--now", after(ws, 91), "--officer", "alice",
       "--officer", "bob")
    report = status(ws)
    assert kid in [k["kid"] for k in keys_in(report, "retired")]
    assert keyset(report)["active_kid"] != kid
    assert _decode(token, _jwks(ws))["sub"] == "user-17"

    # A rotation past the grace: the key is archived and absent from the served JWKS.
    ok(ws, "run", "quarterly-rotation", "--now", after(ws, 91), "--officer", "alice",
       "--officer", "bob")
    report = status(ws)
    assert kid in [k["kid"] for k in keys_in(report, "archived")]
    served = _jwks(ws)
    assert kid not in {k.key_id for k in served.keys}
    with pytest.raises(KeyError):
        _decode(token, served)
    for other in served.keys:  # no served key verifies the old token either
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, other, algorithms=["ES256"], audience="orders")


def test_new_active_key_token_verifies_against_its_bundle(demo: Path, tmp_path: Path) -> None:
    """The key activated by a rotation signs tokens that its own new bundle verifies."""
    ws = clone(demo, tmp_path / "ws")
    ok(ws, "run", "quarterly-rotation", "--now", after(ws, 91), "--officer", "alice",
       "--officer", "bob")
    kid = keyset(status(ws))["active_kid"]
    token = sign_jwt(ws, kid, {"iss": ISSUER, "aud": "orders", "sub": "svc",
                               "exp": int(time.time()) + 600})
    assert _decode(token, _jwks(ws))["sub"] == "svc"
