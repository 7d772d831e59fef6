"""Gateway files against their tools' own validators: decK itself (`deck validate`, Debian
package deck, installed by the set-up) for the Kong file, and the Istio CRDs' openAPIV3Schema
(istio/api `kubernetes/customresourcedefinitions.gen.yaml`), with unknown fields refused as
`kubectl apply --validate=strict` does.

The Istio schema files are third-party data: they come from the shared vector folder into
tests/vectors/istio/ (provenance in docs/gateways.md §3); until they are there those tests skip
and say so.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from console.exports import TargetInput, public_jwk, render_targets

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
ISTIO_CRDS = VECTORS / "istio"
ISSUER = "https://demo.example/api"

# The AuthorizationPolicy that makes a token required next to the RequestAuthentication (which
# alone lets requests without a token through): docs/gateways.md §3.
REQUIRE_TOKEN_POLICY = f"""\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: demo-api-require-jwt
spec:
  action: ALLOW
  rules:
    - from:
        - source:
            requestPrincipals: ["*"]
      when:
        - key: request.auth.claims[iss]
          values: ["{ISSUER}"]
"""


def _jsonschema() -> Any:
    return pytest.importorskip("jsonschema", reason="jsonschema is not installed (dev extra)")


def _vector(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path.relative_to(VECTORS.parent.parent)} is not vendored yet "
                    "(docs/gateways.md gives its source, commit and sha256)")
    return path


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    keys = [public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")
            for _ in range(3)]
    inp = TargetInput.build(keyset="demo-api", issuer=ISSUER, keys=keys)
    return render_targets(inp, ["kong", "istio"])


def strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` wherever an object lists its properties
    and says nothing else about extra ones (Kubernetes prunes or, strictly, refuses them)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def crd_schema(plural: str, version: str = "v1") -> Any:
    crd = yaml.safe_load(_vector(ISTIO_CRDS / f"{plural}.security.istio.io.yaml").read_text())
    (found,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return strict(found["schema"]["openAPIV3Schema"])


def test_istio_request_authentication_fits_its_crd(files: dict[str, bytes]) -> None:
    jsonschema = _jsonschema()
    doc, _ = yaml.safe_load_all(files["istio-request-authentication.yaml"])
    schema = crd_schema("requestauthentications")
    jsonschema.validate({"spec": doc["spec"]}, schema)
    bad = copy.deepcopy(doc)
    bad["spec"]["jwtRules"][0]["jwksUrl"] = "https://x"  # not a field of the CRD
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": bad["spec"]}, schema)


def test_istio_require_token_policy_fits_its_crd() -> None:
    jsonschema = _jsonschema()
    doc = yaml.safe_load(REQUIRE_TOKEN_POLICY)
    jsonschema.validate({"spec": doc["spec"]}, crd_schema("authorizationpolicies"))


def test_istio_target_ships_the_require_token_policy(files: dict[str, bytes]) -> None:
    """The exported file carries the AuthorizationPolicy of docs/gateways.md §3 (the one the
    CRD test above validates), after the RequestAuthentication."""
    request_auth, policy = yaml.safe_load_all(files["istio-request-authentication.yaml"])
    assert request_auth["kind"] == "RequestAuthentication"
    assert policy == yaml.safe_load(REQUIRE_TOKEN_POLICY)


def test_istio_exported_policy_fits_its_crd(files: dict[str, bytes]) -> None:
    jsonschema = _jsonschema()
    _, policy = yaml.safe_load_all(files["istio-request-authentication.yaml"])
    jsonschema.validate({"spec": policy["spec"]}, crd_schema("authorizationpolicies"))


def _deck_validate(tmp_path: Path, text: bytes) -> subprocess.CompletedProcess[str]:
    deck = shutil.which("deck")
    if deck is None:  # `make test` installs it (Debian package deck)
        pytest.fail("decK is not installed: run `make setup` (Debian package deck)")
    state = tmp_path / "kong.yaml"
    state.write_bytes(text)
    return subprocess.run([deck, "validate", "--state", str(state)], capture_output=True,
                          text=True, timeout=60, check=False)


def test_kong_deck_file_passes_deck_validate(files: dict[str, bytes], tmp_path: Path) -> None:
    """decK itself (offline `deck validate`, Kong's validator, not ours) accepts the file, and
    refuses it without the credentials' `secret` (Kong/deck#181) — so the check is real."""
    ok = _deck_validate(tmp_path, files["kong-deck.yaml"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = yaml.safe_load(files["kong-deck.yaml"])
    for entry in doc["consumers"][0]["jwt_secrets"]:
        del entry["secret"]
    refused = _deck_validate(tmp_path, yaml.safe_dump(doc).encode())
    assert refused.returncode != 0 and "secret is required" in refused.stdout + refused.stderr


# decK's rules for a jwt_secrets entry, as docs/gateways.md §2 reads them in the schema
# (definitions.JWTAuth, Kong/go-database-reconciler v1.40.3): checked here whether or not the
# schema itself is vendored, so the rule the Kong target once broke cannot come back unseen.
DECK_JWT_REQUIRED = ("algorithm", "key", "secret")
DECK_JWT_PROPERTIES = {"algorithm", "consumer", "created_at", "id", "key", "rsa_public_key",
                       "secret", "tags"}
NEEDS_PUBLIC_KEY = ("RS", "ES", "PS", "EdDSA")


def deck_rule_problems(doc: Any) -> list[str]:
    problems = []
    for consumer in doc.get("consumers", []):
        for index, entry in enumerate(consumer.get("jwt_secrets", [])):
            where = f"consumers.{consumer.get('username')}.jwt_secrets.{index}"
            problems += [f"{where}: {name} is required" for name in DECK_JWT_REQUIRED
                         if not isinstance(entry.get(name), str) or not entry[name]]
            problems += [f"{where}: {name} is not allowed" for name in entry
                         if name not in DECK_JWT_PROPERTIES]
            if str(entry.get("algorithm", "")).startswith(NEEDS_PUBLIC_KEY) \
                    and not str(entry.get("rsa_public_key", "")).startswith("-----BEGIN PUBLIC"):
                problems.append(f"{where}: rsa_public_key is required for {entry['algorithm']}")
    return problems


def test_kong_deck_file_follows_decks_documented_rules(files: dict[str, bytes]) -> None:
    text = files["kong-deck.yaml"]
    assert not text[:1].isspace()  # decK's readfile refuses a file starting with whitespace
    doc = yaml.safe_load(text)
    assert doc["consumers"][0]["jwt_secrets"], "no credential to check"
    assert deck_rule_problems(doc) == []
    # The rule check is a real one: without a secret (the old file) it complains.
    for entry in doc["consumers"][0]["jwt_secrets"]:
        del entry["secret"]
    assert deck_rule_problems(doc)[0].endswith("secret is required")
