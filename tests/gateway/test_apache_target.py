"""The rendered `apache-openidc.conf` is accepted by `apache2 -t` and, included as an operator
would, makes Apache + mod_auth_openidc accept the keyset's tokens and refuse others."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from console.exports import TargetInput, public_jwk
from console.exports.targets import apache
from tests.gateway.conftest import AUDIENCE, ISSUER
from tests.gateway.harness import ApacheGateway, JwksServer, sign_jwt, wall_claims

pytestmark = pytest.mark.gateway


def write_rendered(directory: Path, inp: TargetInput, **options: object) -> Path:
    (rendered,) = apache.render(inp, **options)  # type: ignore[arg-type]
    path = directory / rendered.name
    path.write_bytes(rendered.data)
    path.chmod(0o644)
    return path


def test_rendered_conf_passes_configtest_and_guards_the_location(
        make_apache: Callable[..., ApacheGateway], jwks_server: JwksServer,
        world_readable_dir: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = public_jwk(key.public_key(), "ES256")
    inp = TargetInput.build(keyset="demo-api", issuer=ISSUER, keys=[jwk])
    conf = write_rendered(world_readable_dir, inp, jwks_uri=jwks_server.url, location="/api/",
                          audience=AUDIENCE, refresh_interval=300)
    gateway = make_apache(start=False, site_conf=conf)
    check = gateway.check_config()
    assert check.returncode == 0 and "Syntax OK" in check.stderr, check.stderr
    gateway.start()
    jwks_server.set_jwks(inp.jwks())

    def tok(signer: ec.EllipticCurvePrivateKey = key, **claims: object) -> str:
        return sign_jwt(signer, "ES256", jwk["kid"],
                        {**wall_claims(issuer=ISSUER, audience=AUDIENCE), **claims})

    assert gateway.request(tok()) == 200
    assert gateway.request(None) == 401
    assert gateway.request(tok(ec.generate_private_key(ec.SECP256R1()))) == 401
    assert gateway.request(tok(iss="https://other.example")) == 401
    assert gateway.request(tok(aud="payments")) == 401
    assert gateway.request(tok(exp=int(time.time()) - 1)) == 401


def test_placeholder_conf_passes_configtest(make_apache: Callable[..., ApacheGateway],
                                            world_readable_dir: Path) -> None:
    """Exported without a JWKS URI, the file still loads: the operator fills the URI in."""
    jwk = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")
    inp = TargetInput.build(keyset="demo-api", issuer=ISSUER, keys=[jwk])
    conf = write_rendered(world_readable_dir, inp)
    assert apache.JWKS_URI_PLACEHOLDER in conf.read_text()
    check = make_apache(start=False, site_conf=conf).check_config()
    assert check.returncode == 0, check.stderr
