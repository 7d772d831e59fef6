"""The reference signer's reading of signer.json, claims, PIN files and key URIs (no HSM here).

Every refusal is a specific `SignerError` naming the member that is wrong; the CLI refuses a
request before it reads the PIN or loads a module (shown by giving neither a module nor a PIN
file that exists: the refusal is about the request itself).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from console.cli import ExitCode, main
from console.errors import SignerError, UsageError
from console.exports.jwks import public_jwk
from console.hsm.uri import KeyUri, key_uri, parse_key_uri
from console.signing import (
    SIGNER_MEMBERS,
    SignerFile,
    check_request,
    parse_claims,
    read_pin_file,
    token_claims,
)

NOW = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
CKA_ID = bytes.fromhex("b7cbc0c503acd1340a323f917d4dea9b")
URI = key_uri(label="demo-token", serial="f7500e7d1c7213f3", manufacturer="SoftHSM project",
              model="SoftHSM v2", cka_id=CKA_ID, object_label="demo-api-20270115-abc123")
KID = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")["kid"]


def signer_dict(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1, "iss": "https://demo.example/api", "alg": "ES256", "kid": KID,
        "pkcs11_uri": URI, "mechanism": "CKM_ECDSA", "host_hash": "sha256",
        "valid_from": "2027-01-15T09:00:00Z",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()


def parse(body: dict[str, Any] | bytes) -> SignerFile:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return SignerFile.from_bytes(data, source="signer.json")


def test_a_contract_signer_json_is_read() -> None:
    signer = parse(signer_dict())
    assert (signer.iss, signer.alg, signer.kid) == ("https://demo.example/api", "ES256", KID)
    assert signer.mechanism.ckm == "CKM_ECDSA" and signer.host_hash == "sha256"
    assert signer.valid_from == datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
    assert signer.key == KeyUri(token="demo-token", serial="f7500e7d1c7213f3",
                                manufacturer="SoftHSM project", model="SoftHSM v2",
                                cka_id=CKA_ID, label="demo-api-20270115-abc123")
    assert set(signer_dict()) == set(SIGNER_MEMBERS)


@pytest.mark.parametrize(("alg", "mechanism", "host_hash"), [
    ("RS256", "CKM_SHA256_RSA_PKCS", None),
    ("PS256", "CKM_SHA256_RSA_PKCS_PSS", None),
    ("PS256", "CKM_RSA_PKCS_PSS", "sha256"),  # p11-kit's path: the host hashes
    ("ES384", "CKM_ECDSA", "sha384"),
    ("EdDSA", "CKM_EDDSA", None),
])
def test_every_mechanism_of_console_jose_is_accepted(alg: str, mechanism: str,
                                                     host_hash: str | None) -> None:
    signer = parse(signer_dict(alg=alg, mechanism=mechanism, host_hash=host_hash))
    assert signer.mechanism.ckm == mechanism and signer.host_hash == host_hash


@dataclass(frozen=True)
class Bad:
    id: str
    body: dict[str, Any] | bytes
    says: str


BAD = [
    Bad("not JSON", b"{", "not JSON"),
    Bad("not UTF-8", b'{"v":1,"iss":"\xff"}', "not JSON"),
    Bad("a list", b"[]", "not a JSON object"),
    Bad("duplicate member", b'{"v":1,"v":1}', "appears twice"),
    Bad("NaN", b'{"v":NaN}', "not a JSON number"),
    Bad("the old format (keyset, no iss)", signer_dict(keyset="demo-api", iss=_DROP),
        "unknown member(s) keyset"),
    Bad("a member missing", signer_dict(valid_from=_DROP), "valid_from missing"),
    Bad("format 2", signer_dict(v=2), "format v 2"),
    Bad("format true", signer_dict(v=True), "format v"),
    Bad("empty iss", signer_dict(iss=""), "'iss' is not a non-empty string"),
    Bad("iss with a newline", signer_dict(iss="https://a\nb"), "control characters"),
    Bad("HS256", signer_dict(alg="HS256"), "alg 'HS256'"),
    Bad("kid not a thumbprint", signer_dict(kid="key-1"), "not an RFC 7638"),
    Bad("pin-value in the URI", signer_dict(pkcs11_uri=URI + "?pin-value=1234"), "query part"),
    Bad("a public key URI", signer_dict(pkcs11_uri=URI.replace("type=private", "type=public")),
        "public key"),
    Bad("no id", signer_dict(pkcs11_uri="pkcs11:token=demo-token;object=x"), "no id"),
    Bad("no token", signer_dict(pkcs11_uri="pkcs11:id=%01;object=x"), "names no token"),
    Bad("an attribute a signer ignores would widen the search",
        signer_dict(pkcs11_uri=URI + ";slot-id=3"), "'slot-id'"),
    Bad("an attribute twice", signer_dict(pkcs11_uri=URI + ";token=other"), "twice"),
    Bad("not a PKCS#11 URI", signer_dict(pkcs11_uri="https://hsm"), "pkcs11:"),
    Bad("a mechanism SoftHSM2 lacks", signer_dict(mechanism="CKM_ECDSA_SHA256"),
        "cannot make ES256 signatures"),
    Bad("another algorithm's mechanism", signer_dict(mechanism="CKM_EDDSA"),
        "cannot make ES256"),
    Bad("host_hash missing for CKM_ECDSA", signer_dict(host_hash=None), "host_hash None"),
    Bad("the wrong host hash", signer_dict(host_hash="sha384"), "it is 'sha256'"),
    Bad("valid_from without a zone", signer_dict(valid_from="2027-01-15T09:00:00"),
        "not an RFC 3339 time"),
]


@pytest.mark.parametrize("case", BAD, ids=[b.id for b in BAD])
def test_a_signer_json_that_does_not_fit_is_refused_naming_why(case: Bad) -> None:
    with pytest.raises(SignerError) as refused:
        parse(case.body)
    assert refused.value.message.startswith("signer.json: ")
    assert case.says in refused.value.message


def test_a_signer_json_not_yet_valid_is_refused_naming_its_time() -> None:
    signer = parse(signer_dict(valid_from="2027-01-15T10:30:00Z"))
    with pytest.raises(SignerError) as refused:
        signer.require_valid(NOW)
    assert "valid from 2027-01-15T10:30:00Z" in refused.value.message
    assert "now 2027-01-15T10:00:00Z" in refused.value.message
    signer.require_valid(NOW + timedelta(minutes=30))  # from then on, it signs
    with pytest.raises(SignerError, match="valid from"):
        check_request(signer, {}, now=NOW)


def test_claims_get_the_issuer_and_a_short_lifetime() -> None:
    signer = parse(signer_dict())
    claims = token_claims(signer, {"sub": "user-1", "aud": "orders"}, now=NOW)
    iat = int(NOW.timestamp())
    assert claims == {"sub": "user-1", "aud": "orders", "iss": "https://demo.example/api",
                      "iat": iat, "exp": iat + 300}
    # Times given are kept: a rehearsal signs with the wall clock, whatever its ledger says.
    given = token_claims(signer, {"iat": 100, "exp": 200}, now=NOW)
    assert (given["iat"], given["exp"]) == (100, 200)


@pytest.mark.parametrize(("claims", "says"), [
    ({"iss": "https://someone.else"}, "name issuer"),
    ({"exp": 1.5}, "'exp' is not a whole number"),
    ({"iat": True}, "'iat' is not a whole number"),
    ({"iat": 200, "exp": 200}, "exp is not after iat"),
])
def test_claims_that_do_not_fit_are_refused(claims: dict[str, Any], says: str) -> None:
    with pytest.raises(SignerError, match=says):
        token_claims(parse(signer_dict()), claims, now=NOW)


@pytest.mark.parametrize(("text", "says"), [
    ("[1]", "not a JSON object"), ("{", "not JSON"), ('{"a":1,"a":2}', "appears twice"),
    ('{"exp":Infinity}', "not JSON"),
])
def test_claims_text_must_be_one_json_object(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_claims(text)


@pytest.mark.parametrize("label", ["plain", "semi;colon", "per%cent", "spa ce", "ünïcode",
                                   "a=b&c", "slash/and?query#frag"])
def test_key_uris_round_trip(label: str) -> None:
    uri = key_uri(label=label, serial="01", manufacturer="M;x", model="m", cka_id=b"\x00;%\xff",
                  object_label=label)
    assert parse_key_uri(uri) == KeyUri(label, "01", "M;x", "m", b"\x00;%\xff", label)


def test_token_mismatch_names_the_first_attribute_that_differs() -> None:
    uri = parse_key_uri(URI)
    same = {"label": "demo-token", "serial": "f7500e7d1c7213f3",
            "manufacturer": "SoftHSM project", "model": "SoftHSM v2"}
    assert uri.token_mismatch(**same) is None
    assert uri.token_mismatch(**{**same, "serial": "0"}) == \
        "serial='f7500e7d1c7213f3' (the token has '0')"


# --- the PIN file --------------------------------------------------------------------------


def write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_the_pin_file_is_read_without_its_newline(tmp_path: Path) -> None:
    assert read_pin_file(write(tmp_path / "pin", b"Abc123xyz\n")) == bytearray(b"Abc123xyz")
    assert read_pin_file(write(tmp_path / "pin2", b"Abc123xyz\r\n")) == bytearray(b"Abc123xyz")
    assert read_pin_file(write(tmp_path / "pin3", b"Abc123xyz")) == bytearray(b"Abc123xyz")


@pytest.mark.parametrize(("make", "says"), [
    (lambda p: write(p, b"secret-pin", 0o644), "can be read by other users (mode 0644)"),
    (lambda p: write(p, b"\n"), "is empty"),
    (lambda p: write(p, b"x" * 300), "longer than 256 bytes"),
    (lambda p: p, "cannot read the PIN file"),
    (lambda p: (p.with_name("real").write_bytes(b"secret-pin"),
                p.with_name("real").chmod(0o600), p.symlink_to(p.with_name("real")), p)[-1],
     "cannot read the PIN file"),
])
def test_a_pin_file_that_cannot_be_trusted_is_refused_without_showing_it(
        tmp_path: Path, make: Callable[[Path], object], says: str) -> None:
    path = tmp_path / "pin"
    make(path)
    with pytest.raises(SignerError) as refused:
        read_pin_file(path)
    assert says in refused.value.message
    assert "secret-pin" not in refused.value.user_message()


# --- the command ---------------------------------------------------------------------------


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ceremony: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_sign_token_refuses_a_future_signer_json_before_the_module_or_the_pin(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    future = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    stamp = future.strftime("%Y-%m-%dT%H:%M:%SZ")
    signer = tmp_path / "signer.json"
    signer.write_text(json.dumps(signer_dict(valid_from=stamp)))
    code, out, err = run(["sign-token", "--signer", str(signer), "--pin-file",
                          str(tmp_path / "no-pin"), "--module", "/no/such/module.so"], capsys)
    assert code == ExitCode.FAILED and out == ""
    assert f"is valid from {stamp}, not yet" in one_error(err)


@pytest.mark.parametrize(("extra", "code", "says"), [
    (["--claims", "[]"], ExitCode.USAGE, "--claims is not a JSON object"),
    (["--module", "/no/such/module.so"], ExitCode.FAILED, "does not exist"),
    (["--module", "relative.so"], ExitCode.FAILED, "not an absolute path"),
    (["--module", "softhsm", "--now", "2027-01-15T10:00:00Z"], ExitCode.FAILED,
     "--now needs a rehearsal workspace"),
    ([], ExitCode.USAGE, "no workspace in"),
])
def test_sign_token_refuses_bad_input_in_one_line(
        extra: list[str], code: int, says: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    signer = tmp_path / "signer.json"
    signer.write_text(json.dumps(signer_dict(valid_from="2020-01-01T00:00:00Z")))
    pin = write(tmp_path / "pin", b"secret-pin")
    got, out, err = run(["sign-token", "--signer", str(signer), "--pin-file", str(pin),
                         *extra], capsys)
    assert got == code and out == ""
    assert says in one_error(err)
    assert "secret-pin" not in err


def test_sign_token_refuses_a_malformed_signer_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signer = tmp_path / "signer.json"
    signer.write_text(json.dumps(signer_dict(v=2)))
    code, _, err = run(["sign-token", "--signer", str(signer), "--pin-file", "x",
                        "--module", "softhsm"], capsys)
    assert code == ExitCode.FAILED and "format v 2" in one_error(err)

