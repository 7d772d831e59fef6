"""Consumer limits (console/consumers.py) are checked when policy.toml is loaded: an algorithm a
consumer cannot verify, or a consumer that holds fewer keys than the rotation publishes, is one
line naming the file and line; what loads is what the export then renders."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from console import consumers
from console.config import load_policy
from console.consumers import KeyShape
from console.errors import ConfigError, TargetLintError
from console.exports import TargetInput, public_jwk, render_targets
from console.exports.targets import ShapeInput, lint_shapes


def policy_text(alg: str, consumer_type: str, version: str | None = None,
                extra: str = "") -> str:
    version_line = f'version = "{version}"\n' if version is not None else ""
    rsa_line = "rsa_bits = 2048\n" if alg in ("RS256", "PS256") else ""
    return (
        "[keysets.api]\n"                      # 1
        'issuer = "https://id.example.com"\n'  # 2
        f'alg = "{alg}"\n'                     # 3
        f"{rsa_line}"
        'max_token_lifetime = "1h"\n'
        "\n"
        "[[keysets.api.consumers]]\n"
        'name = "partners"\n'
        f'type = "{consumer_type}"\n'
        'cache_lifetime = "5m"\n'
        f"{version_line}{extra}"
    )


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return load_policy(path)


def refusal(tmp_path: Path, text: str) -> tuple[str, str]:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = info.value.user_message()
    assert "\n" not in message
    return message.removeprefix(f"{path}:"), info.value.hint


def test_kong_36_refuses_ps256_at_load_and_names_the_version_line(tmp_path: Path) -> None:
    text = policy_text("PS256", "kong", "3.6")
    message, hint = refusal(tmp_path, text)
    line = text.splitlines().index('version = "3.6"') + 1
    assert message.startswith(f"{line}: consumer partners: Kong jwt plugin 3.6 cannot verify "
                              "PS256 (the keyset's alg): Kong verifies PS256 from 3.7.0 on"), \
        message
    assert 'version = "3.7"' in hint and "RS256, ES256, ES384" in hint


def test_kong_37_accepts_ps256_and_the_export_renders_it(tmp_path: Path) -> None:
    policy = load(tmp_path, policy_text("PS256", "kong", "3.7"))
    keyset = policy.keyset("api")  # type: ignore[attr-defined]
    (consumer,) = keyset.consumers
    key = public_jwk(rsa.generate_private_key(65537, 2048).public_key(), "PS256")
    inp = TargetInput.build(keyset="api", issuer=keyset.issuer, keys=[key])
    doc = yaml.safe_load(render_targets(inp, keyset.consumers)["kong-deck.yaml"])
    (credential,) = doc["consumers"][0]["jwt_secrets"]
    assert (credential["key"], credential["algorithm"]) == (key["kid"], "PS256")
    assert consumer.version == "3.7"


def test_kong_without_version_says_to_declare_it(tmp_path: Path) -> None:
    text = policy_text("ES384", "kong")
    message, hint = refusal(tmp_path, text)
    line = text.splitlines().index('type = "kong"') + 1
    assert message.startswith(f"{line}: consumer partners: Kong jwt plugin (no version "
                              "declared) cannot verify ES384"), message
    assert hint.startswith('declare the consumer\'s version (version = "2.4" or later)'), hint
    load(tmp_path, policy_text("ES384", "kong", "2.4"))


def test_apache_openidc_is_a_consumer_type_without_eddsa(tmp_path: Path) -> None:
    load(tmp_path, policy_text("ES256", "apache-openidc",
                               extra='jwks_uri = "https://keys.example.com/jwks.json"\n'))
    message, _ = refusal(tmp_path, policy_text("EdDSA", "apache-openidc"))
    assert "Apache mod_auth_openidc cannot verify EdDSA" in message
    assert "cjose" in message


def test_auth0_refused_at_load_naming_the_three_keys_a_rotation_publishes(
        tmp_path: Path) -> None:
    text = policy_text("RS256", "auth0")
    message, hint = refusal(tmp_path, text)
    line = text.splitlines().index('type = "auth0"') + 1
    assert message.startswith(
        f"{line}: consumer partners: Auth0 client credentials accept at most 2 keys, but keyset "
        "api's rotation keeps 3 published during each grace period of 1d1h5m (token lifetime "
        "+ clock skew + margin): the active key, its successor and the retired key"), message
    assert "remove partners" in hint


def test_the_table_covers_every_policy_consumer_type() -> None:
    from console.config import CONSUMER_TYPES
    from console.exports import CONSUMER_TYPES as TARGET_TYPES

    assert CONSUMER_TYPES == TARGET_TYPES == consumers.CONSUMER_TYPES
    assert "apache-openidc" in CONSUMER_TYPES
    with pytest.raises(TargetLintError, match="unknown consumer type 'traefik'"):
        consumers.capability("traefik")


def test_lints_run_on_shapes_before_keys_exist() -> None:
    """What planning runs: a label and an alg are enough to refuse (or pass) a bundle."""
    existing = KeyShape.of_jwk(public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(),
                                          "ES256"))
    new = KeyShape("RS256", name="api-20270115-aaaaaa (new)", rsa_bits=3072)
    shape = ShapeInput("api", "https://id.example.com", (existing, new))
    lint_shapes(shape, ["envoy", "istio", "kong", "nginx"])
    with pytest.raises(TargetLintError, match=r"Azure APIM validate-jwt accepts RSA keys only: "
                       rf"key {existing.kid} is EC \(ES256\)"):
        lint_shapes(shape, ["envoy", "apim"])
    with pytest.raises(TargetLintError, match=r"at most 2 keys per application, the key set "
                       r"has 3"):
        lint_shapes(ShapeInput("api", "https://id.example.com", (new, new, new)), ["auth0"])
    with pytest.raises(TargetLintError, match=r"needs RSA 2048–4096 bits, key x has 8192"):
        lint_shapes(ShapeInput("api", "https://id.example.com",
                               (KeyShape("RS256", name="x", rsa_bits=8192),)), ["auth0"])
