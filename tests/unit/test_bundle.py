"""The signed JWKS bundle: made with a software signer, checked by three independent JOSE
libraries (jwcrypto, PyJWT, joserfc), and refused by our verifier when tampered with."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jwk as joserfc_jwk
from joserfc import jws as joserfc_jws
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from console.b64 import encode as b64url_encode
from console.errors import ExportError, VerificationError
from console.exports import bundle_digest, make_bundle, public_jwk, verify_bundle
from console.jcs import canonicalize

NOW = datetime(2027, 1, 15, 10, 0, 0, tzinfo=UTC)
LIFETIME = timedelta(days=30)
ISSUER = "https://auth.example.com"
ALGS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class SoftwareSigner:
    """A BundleSigner over a `cryptography` private key: tests only (production uses the HSM)."""

    def __init__(self, key: PrivateKey, alg: str) -> None:
        self._key = key
        self.alg = alg
        self.jwk = public_jwk(key.public_key(), alg)
        self.kid = self.jwk["kid"]

    def sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            if self.alg == "PS256":
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
                return key.sign(data, pss, hashes.SHA256())
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if isinstance(key, ec.EllipticCurvePrivateKey):
            size = (key.curve.key_size + 7) // 8
            digest = hashes.SHA256() if self.alg == "ES256" else hashes.SHA384()
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return key.sign(data)

    def sign_der(self, data: bytes) -> bytes:
        assert isinstance(self._key, ec.EllipticCurvePrivateKey)
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


@pytest.fixture(scope="module")
def signers() -> dict[str, SoftwareSigner]:
    return {
        "RS256": SoftwareSigner(rsa.generate_private_key(65537, 2048), "RS256"),
        "PS256": SoftwareSigner(rsa.generate_private_key(65537, 2048), "PS256"),
        "ES256": SoftwareSigner(ec.generate_private_key(ec.SECP256R1()), "ES256"),
        "ES384": SoftwareSigner(ec.generate_private_key(ec.SECP384R1()), "ES384"),
        "EdDSA": SoftwareSigner(ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    }


@pytest.fixture(scope="module")
def token_keys() -> list[dict[str, str]]:
    return [
        public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256"),
        public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256"),
    ]


def bundle(signer: SoftwareSigner, keys: list[dict[str, str]], **kw: Any) -> bytes:
    args: dict[str, Any] = {
        "issuer": ISSUER,
        "keyset": "demo-api",
        "keys": keys,
        "seq": 1,
        "prev": None,
        "now": NOW,
        "lifetime": LIFETIME,
    }
    args.update(kw)
    return make_bundle(signer, **args)


def sign_raw(signer: SoftwareSigner, header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    """Sign arbitrary header/claims, bypassing make_bundle's refusals (to build bad bundles)."""
    si = f"{b64url_encode(canonicalize(header))}.{b64url_encode(canonicalize(claims))}"
    return f"{si}.{b64url_encode(signer.sign(si.encode()))}".encode()


def parts(token: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    import base64

    h, p, _ = token.decode().split(".")
    dec = [json.loads(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))) for x in (h, p)]
    return dec[0], dec[1]


# --- our verifier accepts what we make --------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_round_trip(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]], alg: str
) -> None:
    signer = signers[alg]
    token = bundle(signer, token_keys)
    header, claims = parts(token)
    assert header == {"alg": alg, "kid": signer.kid, "typ": "jwk-set+jwt"}
    assert token.split(b".")[0] == b64url_encode(canonicalize(header)).encode()
    assert claims == {
        "iss": ISSUER,
        "sub": "demo-api",
        "iat": int(NOW.timestamp()),
        "nbf": int(NOW.timestamp()),
        "exp": int((NOW + LIFETIME).timestamp()),
        "seq": 1,
        "prev": None,
        "keys": token_keys,
        "files": {},
    }
    v = verify_bundle(token, trust=signer.jwk, now=NOW + timedelta(days=1), keyset="demo-api")
    assert (v.seq, v.prev, v.keyset, v.issuer) == (1, None, "demo-api", ISSUER)
    assert v.keys == tuple(token_keys) and v.sha256 == hashlib.sha256(token).hexdigest()


def test_chain(signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]) -> None:
    signer = signers["ES256"]
    first = bundle(signer, token_keys[:1])
    second = bundle(
        signer, token_keys, seq=2, prev=bundle_digest(first), now=NOW + timedelta(days=1)
    )
    v = verify_bundle(second, trust=signer.jwk, previous=first, now=NOW + timedelta(days=2))
    assert v.seq == 2 and v.prev == hashlib.sha256(first).hexdigest()


# --- independent verifiers ------------------------------------------------------------


@pytest.fixture(scope="module")
def live_bundles(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> dict[str, bytes]:
    """Bundles valid at the wall clock, because PyJWT and joserfc check times against it."""
    now = datetime.now(UTC).replace(microsecond=0)
    return {alg: bundle(s, token_keys, now=now) for alg, s in signers.items()}


@pytest.mark.parametrize("alg", ALGS)
def test_jwcrypto_verifies(
    signers: dict[str, SoftwareSigner], live_bundles: dict[str, bytes], alg: str
) -> None:
    token = jwcrypto_jws.JWS()
    token.allowed_algs = [alg]
    token.deserialize(live_bundles[alg].decode(), key=jwcrypto_jwk.JWK(**signers[alg].jwk))
    assert token.jose_header["typ"] == "jwk-set+jwt"
    assert json.loads(token.payload)["sub"] == "demo-api"


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_verifies(
    signers: dict[str, SoftwareSigner], live_bundles: dict[str, bytes], alg: str
) -> None:
    key = pyjwt.PyJWK(signers[alg].jwk)
    claims = pyjwt.decode(
        live_bundles[alg], key, algorithms=[alg], issuer=ISSUER, options={"require": ["exp", "nbf"]}
    )
    assert claims["seq"] == 1 and len(claims["keys"]) == 2
    assert pyjwt.get_unverified_header(live_bundles[alg])["typ"] == "jwk-set+jwt"


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated via RFC 9864")
@pytest.mark.parametrize("alg", ALGS)
def test_joserfc_verifies(
    signers: dict[str, SoftwareSigner], live_bundles: dict[str, bytes], alg: str
) -> None:
    params: dict[str, str | list[str]] = dict(signers[alg].jwk)
    key = joserfc_jwk.import_key(params)
    obj = joserfc_jws.deserialize_compact(live_bundles[alg], key, algorithms=[alg])
    assert obj.protected == {"alg": alg, "kid": signers[alg].kid, "typ": "jwk-set+jwt"}
    assert json.loads(obj.payload)["iss"] == ISSUER


def test_independent_verifiers_reject_a_tampered_bundle(
    signers: dict[str, SoftwareSigner], live_bundles: dict[str, bytes]
) -> None:
    """The three libraries are real checks: they fail on a one-bit change of the claims."""
    token = live_bundles["ES256"]
    h, _p, s = token.split(b".")
    claims = parts(token)[1]
    claims["seq"] = 2
    forged = b".".join([h, b64url_encode(canonicalize(claims)).encode(), s])
    jwk = signers["ES256"].jwk
    with pytest.raises(jwcrypto_jws.InvalidJWSSignature):
        t = jwcrypto_jws.JWS()
        t.allowed_algs = ["ES256"]
        t.deserialize(forged.decode(), key=jwcrypto_jwk.JWK(**jwk))
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(forged, pyjwt.PyJWK(jwk), algorithms=["ES256"])
    with pytest.raises(Exception, match=r"signature"):
        params: dict[str, str | list[str]] = dict(jwk)
        joserfc_jws.deserialize_compact(
            forged, joserfc_jwk.import_key(params), algorithms=["ES256"]
        )


# --- tampering: each case names its failed check ------------------------------------------


def _verify(token: bytes, signer: SoftwareSigner, **kw: Any) -> None:
    kw.setdefault("now", NOW + timedelta(days=1))
    verify_bundle(token, trust=signer.jwk, **kw)


def _claims(keys: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    t = int(NOW.timestamp())
    claims = {"iss": ISSUER, "sub": "demo-api", "iat": t, "nbf": t, "exp": t + 86400 * 30}
    claims.update(seq=1, prev=None, keys=keys, files={})
    claims.update(kw)
    return claims


def test_wrong_signature(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    for alg in ALGS:
        h, p, s = bundle(signers[alg], token_keys).split(b".")
        sig = bytearray(__import__("base64").urlsafe_b64decode(s + b"=" * (-len(s) % 4)))
        sig[len(sig) // 2] ^= 0x01
        forged = b".".join([h, p, b64url_encode(bytes(sig)).encode()])
        with pytest.raises(VerificationError, match=r"^signature: "):
            _verify(forged, signers[alg])


def test_signed_by_another_key(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    other = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()), "ES256")
    with pytest.raises(VerificationError, match=r"^kid: "):
        _verify(bundle(other, token_keys), signers["ES256"])


def test_alg_none(signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]) -> None:
    signer = signers["ES256"]
    header = {"alg": "none", "kid": signer.kid, "typ": "jwk-set+jwt"}
    token = (
        f"{b64url_encode(canonicalize(header))}.{b64url_encode(canonicalize(_claims(token_keys)))}."
    )
    with pytest.raises(VerificationError, match=r"^alg: unsigned tokens"):
        _verify(token.encode(), signer)


def test_hs256_key_confusion(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    """HMAC keyed with the trusted public key (PEM and JWK JSON): the classic confusion attack."""
    signer = signers["RS256"]
    rsa_key = pyjwt.PyJWK(signer.jwk).key
    secrets_ = [
        rsa_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        json.dumps(signer.jwk).encode(),
    ]
    header = {"alg": "HS256", "kid": signer.kid, "typ": "jwk-set+jwt"}
    si = f"{b64url_encode(canonicalize(header))}.{b64url_encode(canonicalize(_claims(token_keys)))}"
    for secret in secrets_:
        mac = hmac.new(secret, si.encode(), hashlib.sha256).digest()
        with pytest.raises(VerificationError, match=r"^alg: HS256 is refused by policy"):
            _verify(f"{si}.{b64url_encode(mac)}".encode(), signer)


def test_ps256_key_refuses_rs256(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["PS256"]
    header = {"alg": "RS256", "kid": signer.kid, "typ": "jwk-set+jwt"}
    si = f"{b64url_encode(canonicalize(header))}.{b64url_encode(canonicalize(_claims(token_keys)))}"
    key = signer._key
    assert isinstance(key, rsa.RSAPrivateKey)
    sig = key.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(
        VerificationError, match=r"^alg: header alg RS256 differs from the key's alg PS256"
    ):
        _verify(f"{si}.{b64url_encode(sig)}".encode(), signer)


def test_typ_wrong(signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]) -> None:
    signer = signers["EdDSA"]
    for typ in ("JWT", "jwk-set+json", None):
        header = {"alg": "EdDSA", "kid": signer.kid, "typ": typ}
        if typ is None:
            del header["typ"]
        with pytest.raises(VerificationError, match=r"^typ: "):
            _verify(sign_raw(signer, header, _claims(token_keys)), signer)


def test_expired_and_not_yet_valid(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES384"]
    token = bundle(signer, token_keys, lifetime=timedelta(days=7))
    _verify(token, signer, now=NOW + timedelta(days=7))  # within the 60 s leeway
    with pytest.raises(VerificationError, match=r"^exp: bundle expired at 2027-01-22T10:00:00Z"):
        _verify(token, signer, now=NOW + timedelta(days=7, seconds=60))
    with pytest.raises(VerificationError, match=r"^nbf: "):
        _verify(token, signer, now=NOW - timedelta(minutes=5))


def test_seq_must_increase(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES256"]
    first = bundle(signer, token_keys, seq=3)
    for seq in (1, 3):
        later = bundle(signer, token_keys, seq=seq, prev=bundle_digest(first))
        with pytest.raises(VerificationError, match=rf"^seq: seq {seq} does not increase"):
            _verify(later, signer, previous=first)


def test_prev_mismatch(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES256"]
    first = bundle(signer, token_keys)
    other = bundle(signer, token_keys[:1])
    for prev in (bundle_digest(other), None):
        second = bundle(signer, token_keys, seq=2, prev=prev)
        with pytest.raises(VerificationError, match=r"^prev: "):
            _verify(second, signer, previous=first)


def test_kid_not_thumbprint(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES256"]
    bad = dict(token_keys[0], kid="key-2027-01")
    header = {"alg": "ES256", "kid": signer.kid, "typ": "jwk-set+jwt"}
    with pytest.raises(
        VerificationError, match=r"^keys: key #1: kid 'key-2027-01' is not its thumbprint"
    ):
        _verify(sign_raw(signer, header, _claims([token_keys[1], bad])), signer)
    with pytest.raises(ExportError, match=r"thumbprint"):
        bundle(signer, [bad])


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_private_member_in_keys(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]], member: str
) -> None:
    signer = signers["ES256"]
    leaked = dict(token_keys[0], **{member: "AAAA"})
    header = {"alg": "ES256", "kid": signer.kid, "typ": "jwk-set+jwt"}
    with pytest.raises(VerificationError, match=rf"^keys: key #0: private member '{member}'"):
        _verify(sign_raw(signer, header, _claims([leaked])), signer)
    with pytest.raises(ExportError, match=r"private member"):
        bundle(signer, [leaked])


def test_es_signature_in_der_form(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES256"]
    h, p, _ = bundle(signer, token_keys).split(b".")
    der = signer.sign_der(h + b"." + p)
    with pytest.raises(VerificationError, match=r"^signature: ES256 needs raw r\|\|s of 64 bytes"):
        _verify(b".".join([h, p, b64url_encode(der).encode()]), signer)


def test_make_bundle_refuses_a_der_signer(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    """An HSM wrapper returning DER is caught when the bundle is made, not at a gateway."""
    signer = signers["ES256"]

    class DerSigner(SoftwareSigner):
        def sign(self, data: bytes) -> bytes:
            return self.sign_der(data)

    der_signer = DerSigner.__new__(DerSigner)
    der_signer.__dict__.update(signer.__dict__)
    with pytest.raises(ExportError, match=r"does not verify"):
        bundle(der_signer, token_keys)


@pytest.mark.parametrize(
    ("mangle", "check"),
    [
        (lambda t: t + b"\n", "compact form"),
        (lambda t: b" " + t, "compact form"),
        (lambda t: t.replace(b".", b"=.", 1), "compact form"),
        (lambda t: t + b".x", "compact form"),
        (lambda t: b".".join(t.split(b".")[:2]), "compact form"),
    ],
    ids=["trailing newline", "leading space", "padding", "four parts", "two parts"],
)
def test_strict_compact_form(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]], mangle: Any, check: str
) -> None:
    signer = signers["ES256"]
    with pytest.raises(VerificationError, match=rf"^{check}: "):
        _verify(mangle(bundle(signer, token_keys)), signer)


def test_duplicate_header_key(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES256"]
    raw = f'{{"alg":"ES256","alg":"ES256","kid":"{signer.kid}","typ":"jwk-set+jwt"}}'
    si = f"{b64url_encode(raw.encode())}.{b64url_encode(canonicalize(_claims(token_keys)))}"
    token = f"{si}.{b64url_encode(signer.sign(si.encode()))}".encode()
    with pytest.raises(VerificationError, match=r"^header: not strict JSON .*duplicate key"):
        _verify(token, signer)


def test_extra_header_and_claims_refused(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES256"]
    header = {"alg": "ES256", "kid": signer.kid, "typ": "jwk-set+jwt"}
    with pytest.raises(VerificationError, match=r"^header: unexpected .*'jku'"):
        _verify(sign_raw(signer, {**header, "jku": "https://evil"}, _claims(token_keys)), signer)
    with pytest.raises(VerificationError, match=r"^claims: unexpected .*'aud'"):
        _verify(sign_raw(signer, header, _claims(token_keys, aud="x")), signer)
    with pytest.raises(VerificationError, match=r"^claims: 'seq' is not an integer"):
        _verify(sign_raw(signer, header, _claims(token_keys, seq="2")), signer)



def test_a_bundle_without_a_file_list_verifies_but_its_folder_cannot(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    """Bundles made before the files claim: the signature and keys still verify (history does
    not look forged), but no folder can be checked against them."""
    from console.exports.verify_bundle import require_folder

    signer = signers["ES256"]
    header = {"alg": "ES256", "kid": signer.kid, "typ": "jwk-set+jwt"}
    without_files = _claims(token_keys)
    del without_files["files"]
    token = sign_raw(signer, header, without_files)
    verified = verify_bundle(token, trust=signer.jwk, now=NOW + timedelta(days=1))
    assert verified.files is None
    with pytest.raises(VerificationError, match=r"^folder: bundle #1 signs no file list"):
        require_folder(verified, {"jwks.jwt": bundle_digest(token)})


GOOD_DIGEST = "ab" * 32


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ([], "not an object"),
        ({"../etc/passwd": GOOD_DIGEST}, "not a plain relative path"),
        ({"/abs": GOOD_DIGEST}, "not a plain relative path"),
        ({"keys/.hidden": GOOD_DIGEST}, "not a plain relative path"),
        ({"a\\b": GOOD_DIGEST}, "not a plain relative path"),
        ({"MANIFEST.sha256": GOOD_DIGEST}, "derived from the bundle"),
        ({"jwks.jwt": GOOD_DIGEST}, "derived from the bundle"),
        ({"jwks.json": "AB" * 32}, "lowercase hex"),
        ({"jwks.json": 5}, "lowercase hex"),
    ],
    ids=["list", "dot-dot", "absolute", "hidden", "backslash", "manifest", "itself",
         "upper hex", "number"],
)
def test_files_claim_is_checked(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]], files: Any, match: str
) -> None:
    signer = signers["ES256"]
    header = {"alg": "ES256", "kid": signer.kid, "typ": "jwk-set+jwt"}
    with pytest.raises(VerificationError, match=rf"^files: .*{match}"):
        _verify(sign_raw(signer, header, _claims(token_keys, files=files)), signer)


def test_files_claim_round_trip_and_make_bundle_refuses_bad_names(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES256"]
    files = {"jwks.json": GOOD_DIGEST, "keys/a.pem": "cd" * 32}
    verified = verify_bundle(bundle(signer, token_keys, files=files), trust=signer.jwk,
                             now=NOW + timedelta(days=1))
    assert dict(verified.files) == files
    with pytest.raises(ExportError, match="bad file name"):
        bundle(signer, token_keys, files={"../x": GOOD_DIGEST})


def test_previous_names_the_bundle_to_fetch_and_the_kids_that_changed(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES256"]
    third = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")
    b3 = bundle(signer, token_keys, seq=3)
    b4 = bundle(signer, [token_keys[1], third], seq=4, prev=bundle_digest(b3))
    b5 = bundle(signer, [third], seq=5, prev=bundle_digest(b4))
    v = verify_bundle(b4, trust=signer.jwk, previous=b3, now=NOW + timedelta(days=1))
    assert v.added == (third["kid"],) and v.removed == (token_keys[0]["kid"],)
    with pytest.raises(VerificationError) as e:
        verify_bundle(b5, trust=signer.jwk, previous=b3, now=NOW + timedelta(days=1))
    assert e.value.message == (f"bundle #5 follows #4 (prev {bundle_digest(b4)[:16]}…), but your "
                               "previous is #3: fetch and install #4 first")


def test_trust_key_must_be_public(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES256"]
    token = bundle(signer, token_keys)
    with pytest.raises(VerificationError, match=r"private member 'd'"):
        verify_bundle(token, trust={**signer.jwk, "d": "AAAA"}, now=NOW)
    with pytest.raises(VerificationError, match=r"no time zone"):
        verify_bundle(token, trust=signer.jwk, now=NOW.replace(tzinfo=None))


def test_expected_keyset_and_issuer(
    signers: dict[str, SoftwareSigner], token_keys: list[dict[str, str]]
) -> None:
    signer = signers["ES256"]
    token = bundle(signer, token_keys)
    with pytest.raises(VerificationError, match=r"^sub: "):
        _verify(token, signer, keyset="other")
    with pytest.raises(VerificationError, match=r"^iss: "):
        _verify(token, signer, issuer="https://other")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"seq": 0}, "seq"),
        ({"prev": "ABC"}, "prev"),
        ({"lifetime": timedelta(0)}, "lifetime"),
        ({"now": NOW.replace(tzinfo=None)}, "time zone"),
        ({"keys": []}, "empty"),
    ],
    ids=["seq 0", "bad prev", "zero lifetime", "naive now", "no keys"],
)
def test_make_bundle_refusals(
    signers: dict[str, SoftwareSigner],
    token_keys: list[dict[str, str]],
    kw: dict[str, Any],
    match: str,
) -> None:
    args = {"keys": token_keys, **kw}
    with pytest.raises(ExportError, match=match):
        bundle(signers["ES256"], **args)
