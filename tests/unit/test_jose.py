"""console.jose: the one JOSE algorithm vocabulary, row by row, and its refusals."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import pytest

from console import jose
from console.errors import ConsoleError, UnknownAlgorithmError


@dataclass(frozen=True, slots=True)
class Row:
    """What each policy algorithm must mean (RFC 7518 section 3.1, RFC 8037, notes/libraries.md)."""

    alg: str
    kty: str
    curve: str | None
    hash_name: str | None
    keygen: str
    # (mechanism name, host hashes first), in order of preference
    mechanisms: tuple[tuple[str, bool], ...]
    signature_size: int | None  # None: the RSA modulus length
    is_rsa: bool


ROWS = [
    Row("RS256", "RSA", None, "sha256", "RSA_PKCS_KEY_PAIR_GEN",
        (("SHA256_RSA_PKCS", False),), None, True),
    # p11-kit 0.24 cannot forward CKM_SHA256_RSA_PKCS_PSS: the host-hash fallback comes second.
    Row("PS256", "RSA", None, "sha256", "RSA_PKCS_KEY_PAIR_GEN",
        (("SHA256_RSA_PKCS_PSS", False), ("RSA_PKCS_PSS", True)), None, True),
    # SoftHSM2 2.6 has no CKM_ECDSA_SHA256/384: the host always hashes.
    Row("ES256", "EC", "P-256", "sha256", "EC_KEY_PAIR_GEN", (("ECDSA", True),), 64, False),
    Row("ES384", "EC", "P-384", "sha384", "EC_KEY_PAIR_GEN", (("ECDSA", True),), 96, False),
    Row("EdDSA", "OKP", "Ed25519", None, "EC_EDWARDS_KEY_PAIR_GEN", (("EDDSA", False),), 64,
        False),
]  # fmt: skip


def test_the_policy_algorithms_are_the_five_of_the_design() -> None:
    assert jose.ALGORITHMS == ("RS256", "PS256", "ES256", "ES384", "EdDSA")
    assert [r.alg for r in ROWS] == list(jose.ALGORITHMS)
    assert set(jose.VERIFY_ONLY_ALGORITHMS) == {"RS384", "RS512", "PS384", "PS512", "ES512"}
    assert set(jose.ALGORITHMS) | set(jose.VERIFY_ONLY_ALGORITHMS) == jose.VERIFIABLE_ALGORITHMS


@pytest.mark.parametrize("row", ROWS, ids=[r.alg for r in ROWS])
def test_policy_algorithm_row(row: Row) -> None:
    spec = jose.algorithm(row.alg)
    assert spec.name == row.alg and spec.policy
    assert spec.kty == row.kty
    assert spec.curve == row.curve
    assert spec.hash_name == row.hash_name
    assert spec.is_rsa is row.is_rsa
    assert spec.key_kind == (row.curve or "RSA")
    assert spec.keygen_mechanism == row.keygen
    assert tuple((m.name, m.host_hashes) for m in spec.sign_mechanisms) == row.mechanisms
    assert [m.ckm for m in spec.sign_mechanisms] == [f"CKM_{n}" for n, _ in row.mechanisms]
    assert spec.fixed_signature_size == row.signature_size
    if row.signature_size is None:
        assert spec.signature_size(rsa_modulus_bytes=384) == 384
        with pytest.raises(ValueError, match="modulus"):
            spec.signature_size()
    else:
        assert spec.signature_size() == row.signature_size
        assert spec.signature_size(rsa_modulus_bytes=384) == row.signature_size
    if row.hash_name is not None:
        assert spec.digest_size == hashlib.new(row.hash_name).digest_size
    else:
        assert spec.digest_size is None
    # The lookups agree with each other.
    assert jose.check_algorithm(row.alg) == row.alg
    assert jose.verification_algorithm(row.alg) is spec


@pytest.mark.parametrize("alg", jose.VERIFY_ONLY_ALGORITHMS)
def test_verify_only_algorithms_have_no_mechanisms_and_are_not_policy(alg: str) -> None:
    spec = jose.verification_algorithm(alg)
    assert not spec.policy and spec.sign_mechanisms == () and spec.keygen_mechanism is None
    assert spec.hash_name == f"sha{alg[2:]}"
    assert spec.kty == ("EC" if alg.startswith("ES") else "RSA")
    if alg == "ES512":
        assert spec.curve == "P-521" and spec.signature_size() == 132
    with pytest.raises(UnknownAlgorithmError):
        jose.algorithm(alg)
    with pytest.raises(UnknownAlgorithmError):
        jose.check_algorithm(alg)


@pytest.mark.parametrize(
    "alg",
    ["HS256", "none", "None", "", "es256", "ES256 ", "Ed25519", "ES256K", "RSA-OAEP", None, 256,
     b"ES256", ["ES256"]],
    ids=lambda a: repr(a),
)  # fmt: skip
def test_unknown_algorithm_is_refused_by_every_lookup(alg: object) -> None:
    for lookup in (jose.algorithm, jose.check_algorithm, jose.verification_algorithm):
        with pytest.raises(UnknownAlgorithmError) as caught:
            lookup(alg)
        error = caught.value
        assert isinstance(error, ConsoleError)
        assert "unknown JWS algorithm" in error.message
        assert "ES256" in error.hint  # the hint lists what is accepted
        assert error.alg == (alg if isinstance(alg, str) else "")


def test_refusal_message_does_not_echo_non_text_values() -> None:
    with pytest.raises(UnknownAlgorithmError, match="a bytes"):
        jose.algorithm(b"\x1b[31mES256")


def test_signature_schemes() -> None:
    schemes = {a: jose.verification_algorithm(a).scheme for a in jose.VERIFIABLE_ALGORITHMS}
    assert {a for a, s in schemes.items() if s == "RSASSA-PSS"} == {"PS256", "PS384", "PS512"}
    assert {a for a, s in schemes.items() if s == "RSASSA-PKCS1-v1_5"} == {
        "RS256", "RS384", "RS512"
    }  # fmt: skip
    assert {a for a, s in schemes.items() if s == "ECDSA"} == {"ES256", "ES384", "ES512"}
    assert {a for a, s in schemes.items() if s == "EdDSA"} == {"EdDSA"}


def test_rsa_sizes() -> None:
    assert jose.RSA_SIZES == (2048, 3072, 4096)
    assert min(jose.RSA_SIZES) == jose.MIN_RSA_BITS
    assert jose.DEFAULT_RSA_BITS in jose.RSA_SIZES


def test_rows_are_frozen() -> None:
    spec = jose.algorithm("ES256")
    with pytest.raises(AttributeError):
        spec.curve = "P-384"  # type: ignore[misc]


@pytest.mark.parametrize(
    "change",
    [
        {"scheme": "ECDSA"},  # an RSA key cannot make ECDSA signatures
        {"curve": "P-256"},  # RSA has no curve
        {"coordinate_size": 32},  # only EC has coordinates
        {"hash_name": None},  # only EdDSA has no hash
        {"sign_mechanisms": ()},  # a policy algorithm must be signable
        {"keygen_mechanism": None},
    ],
    ids=["scheme", "curve", "coordinate", "hash", "no-sign-mechanism", "no-keygen"],
)
def test_inconsistent_rows_cannot_be_built(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        replace(jose.algorithm("RS256"), **change)  # type: ignore[arg-type]


def test_mechanism_names_are_bare() -> None:
    with pytest.raises(ValueError):
        jose.SignMechanism("CKM_ECDSA", host_hashes=True)
    with pytest.raises(ValueError):
        jose.SignMechanism("ecdsa", host_hashes=True)


def test_mechanism_names_exist_in_python_pkcs11() -> None:
    # The HSM layer maps these names with `pkcs11.Mechanism[name]`.
    from pkcs11 import Mechanism

    for alg in jose.ALGORITHMS:
        spec = jose.algorithm(alg)
        assert spec.keygen_mechanism is not None
        for name in (spec.keygen_mechanism, *(m.name for m in spec.sign_mechanisms)):
            assert Mechanism[name].name == name


def test_config_duplicates_agree_until_config_imports_jose() -> None:
    # console/config.py keeps its own copy of the vocabulary while it is being reorganised;
    # this keeps the two from drifting apart until it reads console.jose instead.
    from console import config

    assert tuple(config.ALGORITHMS) == jose.ALGORITHMS
    assert set(config.RSA_ALGORITHMS) == {a for a in jose.ALGORITHMS if jose.algorithm(a).is_rsa}
    assert dict(config.CURVE_OF_ALG) == {
        a: jose.algorithm(a).curve for a in jose.ALGORITHMS if jose.algorithm(a).curve
    }


def test_jwk_member_tables() -> None:
    assert set(jose.JWK_KEY_MEMBERS) == set(jose.THUMBPRINT_MEMBERS) == {"RSA", "EC", "OKP"}
    for kty, members in jose.THUMBPRINT_MEMBERS.items():
        # RFC 7638 section 3.2: the required members, in lexicographic order.
        assert list(members) == sorted(members)
        assert set(members) == jose.JWK_KEY_MEMBERS[kty] | {"kty"}
    assert not jose.JWK_COMMON_MEMBERS & set().union(*jose.JWK_KEY_MEMBERS.values())
    for alg in jose.VERIFIABLE_ALGORITHMS:
        spec = jose.verification_algorithm(alg)
        assert ("crv" in jose.JWK_KEY_MEMBERS[spec.kty]) == (spec.curve is not None)
