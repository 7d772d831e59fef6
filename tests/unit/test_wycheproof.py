"""Wycheproof JOSE vectors (C2SP/wycheproof, in tests/vectors/wycheproof) through our JWS core.

Every test carrying a `jws` must agree with its label, except:
- KNOWN_DEVIATIONS: single cases whose label contradicts the RFCs (README of the vectors);
- POLICY_DEVIATIONS: "valid" HS* cases, rejected because the console never verifies MACs
  (public-key signatures only; RFC 8725 §2.1 key confusion). Counted per group and asserted.
The core is run with every algorithm it can verify (SUPPORTED_ALGS), so RS384/PS512/ES512
vectors exercise it too; bundles allow fewer (BUNDLE_ALGS).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from console.errors import VerificationError
from console.exports import verify_jws, verify_jws_with_jwks
from console.exports._keys import SUPPORTED_ALGS

WYCHEPROOF = Path(__file__).resolve().parents[1] / "vectors" / "wycheproof"
FILES = {
    "jws": "json_web_signature_test.json",
    "jwk": "json_web_key_test.json",
    "crypto": "json_web_crypto_test.json",
}

KNOWN_DEVIATIONS: dict[str, str] = {
    "jws-346": "RFC 7520 fig. 20: key alg PS256, header PS384 (RFC 8725 §3.1: one alg per key)",
    "jws-350": "same token as jws-346 with key_ops; header alg differs from the key's alg",
    "jws-347": "RFC 7520 fig. 27: key alg 'ES521' is not a registered JWA name; we refuse the key",
    "jws-351": "same token as jws-347 with key_ops; unregistered key alg 'ES521'",
    "jws-372": "'?' inserted in the header: strict RFC 7515 base64url refuses it (vectors README)",
    "jws-373": "'?' inserted in the payload: strict RFC 7515 base64url refuses it (vectors README)",
}

# (file, group index, group comment) -> number of HS* cases labelled valid that policy rejects.
POLICY_REASON = "HS*/kty oct refused by policy: the console verifies public-key signatures only"
POLICY_DEVIATIONS: dict[tuple[str, int, str], int] = {
    ("jws", 0, "hs256"): 1,
    ("jws", 12, "rfc7520"): 1,
    ("jws", 16, "rfc7520"): 1,
    ("jws", 21, "base64"): 5,  # 357, 358, 359, 376, 377 (372, 373 are KNOWN_DEVIATIONS)
    ("jwk", 1, "jws_keyset"): 1,
    ("jwk", 11, "HS256"): 1,
    ("jwk", 12, "HS384"): 1,
    ("jwk", 13, "HS512"): 1,
    ("crypto", 0, "jws_aes"): 1,
    ("crypto", 5, "jws_keyset"): 1,
}


@cache
def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WYCHEPROOF / FILES[name]).read_text())
    return data


@dataclass(frozen=True)
class Case:
    id: str
    file: str
    group_index: int
    group: dict[str, Any]
    test: dict[str, Any]

    @property
    def key(self) -> dict[str, Any]:
        key: dict[str, Any] = self.group.get("public") or self.group["private"]
        return key

    @property
    def symmetric(self) -> bool:
        return any(k.get("kty") == "oct" for k in self.key.get("keys", [self.key]))


def cases() -> list[Case]:
    out = []
    for name in FILES:
        for index, group in enumerate(load(name)["testGroups"]):
            for test in group["tests"]:
                if "jws" in test:
                    out.append(Case(f"{name}-{test['tcId']}", name, index, group, test))
    return out


ALL_CASES = cases()


def run(case: Case) -> tuple[str, str]:
    jws = case.test["jws"]
    token = jws if isinstance(jws, str) else json.dumps(jws)  # JSON serialization: must fail
    try:
        if "keys" in case.key:
            verify_jws_with_jwks(token, case.key, allowed_algs=SUPPORTED_ALGS)
        else:
            verify_jws(token, case.key, allowed_algs=SUPPORTED_ALGS)
    except VerificationError as e:
        return "invalid", e.message
    return "valid", ""


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_vector(case: Case) -> None:
    expected = case.test["result"]
    got, reason = run(case)
    if case.id in KNOWN_DEVIATIONS:
        assert got != expected, f"{case.id} now agrees: remove it from KNOWN_DEVIATIONS"
    elif case.symmetric and expected == "valid":
        assert got == "invalid" and "refused by policy" in reason, reason
    elif expected == "acceptable":  # pragma: no cover - none in these files (shape test)
        assert got in ("valid", "invalid")
    else:
        assert got == expected, f"{case.id} {case.test['comment']}: {reason}"


def test_policy_deviations_per_group() -> None:
    counted: Counter[tuple[str, int, str]] = Counter()
    for case in ALL_CASES:
        if case.symmetric and case.test["result"] == "valid" and case.id not in KNOWN_DEVIATIONS:
            counted[(case.file, case.group_index, case.group["comment"])] += 1
    assert dict(counted) == POLICY_DEVIATIONS, POLICY_REASON
    assert sum(POLICY_DEVIATIONS.values()) == 14


def test_no_asymmetric_valid_case_is_rejected_outside_known_deviations() -> None:
    accepted = [c.id for c in ALL_CASES if run(c)[0] == "valid"]
    expected_valid = [
        c.id
        for c in ALL_CASES
        if c.test["result"] == "valid" and not c.symmetric and c.id not in KNOWN_DEVIATIONS
    ]
    assert accepted == expected_valid
    assert len(accepted) == 35


def test_file_shapes() -> None:
    """New upstream cases, algorithms or group types must fail here, not be skipped."""
    expected = {
        "jws": (401, 23, {"JsonWebSignature"}),
        "jwk": (26, 25, {"JsonWebKey"}),
        "crypto": (83, 8, {"JsonWebCrypto"}),
    }
    key_algs: set[str] = set()
    for name, (n_tests, n_groups, types) in expected.items():
        data = load(name)
        groups = data["testGroups"]
        assert data["numberOfTests"] == n_tests == sum(len(g["tests"]) for g in groups)
        assert len(groups) == n_groups
        assert {g["type"] for g in groups} == types
        for group in groups:
            key = group.get("public") or group["private"]
            key_algs |= {k.get("alg") for k in key.get("keys", [key])}
            for test in group["tests"]:
                assert test["result"] in {"valid", "invalid"}
                assert set(test["flags"]) <= set(data["notes"])
    assert key_algs == {
        None, "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
        "ES256", "ES521", "ES224", "RSA1_5", "A256GCM", "A256KW", "ECDH-ES+A128KW",
    }  # fmt: skip
    assert len(ALL_CASES) == 401 + 26 + 49  # the crypto file's 34 JWE cases have no `jws`


def test_known_deviation_ids_exist() -> None:
    ids = {c.id for c in ALL_CASES}
    assert set(KNOWN_DEVIATIONS) <= ids
