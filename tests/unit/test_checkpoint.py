"""Signed notes and checkpoints: the Go sumdb/note vector, and the signed-note conformance table."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from console.errors import VerificationError
from console.ledger import checkpoint as cp

# golang.org/x/mod/sumdb/note (note.go doc comment and note_test.go): a third-party vector.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgK"
    "vqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ORIGIN = f"example.com/ceremony-ledger/{uuid.UUID(int=7)}"
ROOT = hashlib.sha256(b"root").digest()


def go_private_key() -> Ed25519PrivateKey:
    seed = base64.b64decode(GO_SIGNER.split("+", 4)[4])
    assert seed[0] == 1
    return Ed25519PrivateKey.from_private_bytes(seed[1:])


def test_go_vector_sign_reproduces_the_published_note_byte_for_byte() -> None:
    assert cp.sign_note(GO_TEXT, "PeterNeumann", go_private_key()) == GO_NOTE


def test_go_vector_verifier_key_round_trips() -> None:
    assert cp.verifier_key("PeterNeumann", go_private_key().public_key()) == GO_VERIFIER
    v = cp.parse_verifier_key(GO_VERIFIER)
    assert v.name == "PeterNeumann" and v.key_id.hex() == "c74f20a3"
    text, signers = cp.open_note(GO_NOTE, [v])
    assert text == GO_TEXT and signers == {"PeterNeumann"}
    with pytest.raises(VerificationError, match="does not verify"):
        cp.open_note(GO_NOTE.replace("cryptography", "cryptographY"), [v])


@pytest.mark.parametrize(
    "bad",
    [
        GO_VERIFIER[:-1],
        GO_VERIFIER.replace("c74f20a3", "c74f20a4"),
        GO_VERIFIER.replace("+ARpc", "+AhpC"),
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_mangled_verifier_keys_are_refused(bad: str) -> None:
    with pytest.raises(VerificationError):
        cp.parse_verifier_key(bad)


def test_key_id_is_sha256_of_name_newline_type_key() -> None:
    key = go_private_key().public_key()
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    want = hashlib.sha256(b"PeterNeumann\n\x01" + raw).digest()[:4]
    assert cp.key_id("PeterNeumann", key) == want


def test_checkpoint_body_round_trip() -> None:
    body = cp.checkpoint_body(ORIGIN, 42, ROOT)
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    parsed = cp.parse_checkpoint_body(body)
    assert (parsed.origin, parsed.size, parsed.root) == (ORIGIN, 42, ROOT)


# --- conformance table ---------------------------------------------------------------------

KEYS = {
    n: Ed25519PrivateKey.from_private_bytes(hashlib.sha256(n.encode()).digest())
    for n in ([f"officer{i}" for i in range(20)] + ["stranger"])
}
BODY = cp.checkpoint_body(ORIGIN, 9, ROOT)


def verifiers(*names: str) -> list[cp.NoteVerifier]:
    return [cp.parse_verifier_key(cp.verifier_key(n, KEYS[n].public_key())) for n in names]


def signed(*names: str) -> str:
    note = cp.sign_note(BODY, names[0], KEYS[names[0]])
    for n in names[1:]:
        note = cp.cosign_note(note, n, KEYS[n])
    return note


@dataclass(frozen=True)
class Case:
    id: str
    note: Callable[[], str]
    trust: tuple[str, ...]
    required: frozenset[str] = frozenset()
    origin: str | None = ORIGIN
    error: str | None = None  # None: must verify; else a regex the error must match
    signers: frozenset[str] = frozenset()


def forged_sig(note: str) -> str:
    # Same key id, signature of another body.
    other = cp.sign_note(cp.checkpoint_body(ORIGIN, 10, ROOT), "officer1", KEYS["officer1"])
    return note.split("\n\n")[0] + "\n\n" + other.split("\n\n")[1]


def wrong_key_id(note: str) -> str:
    text, sigs = cp.parse_note(note)
    blob = bytes([sigs[0].key_id[0] ^ 1]) + sigs[0].key_id[1:] + sigs[0].signature
    return text + f"\n— {sigs[0].name} {base64.b64encode(blob).decode()}\n"


CASES = [
    Case(
        "one known signer verifies",
        lambda: signed("officer1"),
        ("officer1",),
        signers=frozenset({"officer1"}),
    ),
    Case(
        "unknown key only is rejected",
        lambda: signed("stranger"),
        ("officer1",),
        error="not signed by any known key",
    ),
    Case(
        "unknown key is ignored next to a known one",
        lambda: signed("stranger", "officer1"),
        ("officer1",),
        signers=frozenset({"officer1"}),
    ),
    Case(
        "known key with bad signature is rejected",
        lambda: forged_sig(signed("officer1")),
        ("officer1",),
        error="does not verify",
    ),
    Case(
        "bad known signature rejects even with a good one",
        lambda: signed("officer2") + forged_sig(signed("officer1")).split("\n\n")[1],
        ("officer1", "officer2"),
        error="does not verify",
    ),
    Case(
        "17 signatures are accepted",
        lambda: signed(*[f"officer{i}" for i in range(17)]),
        tuple(f"officer{i}" for i in range(17)),
        signers=frozenset(f"officer{i}" for i in range(17)),
    ),
    Case(
        "required signer missing",
        lambda: signed("officer1"),
        ("officer1", "officer2"),
        required=frozenset({"officer1", "officer2"}),
        error="not signed by officer2",
    ),
    Case(
        "required signers present",
        lambda: signed("officer1", "officer2"),
        ("officer1", "officer2"),
        required=frozenset({"officer1", "officer2"}),
        signers=frozenset({"officer1", "officer2"}),
    ),
    Case(
        "control character in body",
        lambda: signed("officer1").replace("\n9\n", "\n9\x1b\n"),
        ("officer1",),
        error="control character",
    ),
    Case(
        "carriage return",
        lambda: signed("officer1").replace("\n", "\r\n", 1),
        ("officer1",),
        error="control character",
    ),
    Case("NUL", lambda: signed("officer1") + "\x00", ("officer1",), error="control character"),
    Case(
        "missing blank line",
        lambda: signed("officer1").replace("\n\n", "\n"),
        ("officer1",),
        error="blank line|empty line|does not start",
    ),
    Case("no final newline", lambda: signed("officer1")[:-1], ("officer1",), error="newline"),
    Case(
        "wrong key id is an unknown key",
        lambda: wrong_key_id(signed("officer1")),
        ("officer1",),
        error="not signed by any known key",
    ),
    Case(
        "origin mismatch",
        lambda: signed("officer1"),
        ("officer1",),
        origin="example.org/ceremony-ledger/" + str(uuid.UUID(int=8)),
        error="origin",
    ),
    Case(
        "signature line without em dash",
        lambda: signed("officer1").replace("\u2014", "-"),
        ("officer1",),
        error="does not start",
    ),
    Case("no signatures", lambda: BODY + "\n", ("officer1",), error="no signatures"),
    Case("no verifier keys", lambda: signed("officer1"), (), error="no verifier keys"),
    Case(
        "lone surrogate",
        lambda: signed("officer1").replace("example", "\ud800"),
        ("officer1",),
        error="UTF-8",
    ),
    Case(
        "101 signatures",
        lambda: signed("officer1") + signed("officer1").split("\n\n")[1] * 100,
        ("officer1",),
        error="more than 100",
    ),
    Case(
        "non-decimal size",
        lambda: cp.sign_note(
            f"{ORIGIN}\n09\n{base64.b64encode(ROOT).decode()}\n", "officer1", KEYS["officer1"]
        ),
        ("officer1",),
        error="decimal",
    ),
    Case(
        "short root",
        lambda: cp.sign_note(f"{ORIGIN}\n9\nAAAA\n", "officer1", KEYS["officer1"]),
        ("officer1",),
        error="32 bytes",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_signed_note_conformance(case: Case) -> None:
    note = case.note()
    if case.error is None:
        got = cp.verify_note(
            note, verifiers(*case.trust), required=case.required, origin=case.origin
        )
        assert got.signers == case.signers
        assert (got.origin, got.size, got.root) == (ORIGIN, 9, ROOT)
    else:
        with pytest.raises(VerificationError, match=case.error):
            cp.verify_note(note, verifiers(*case.trust), required=case.required, origin=case.origin)


def test_cosigning_twice_with_the_same_key_is_refused() -> None:
    with pytest.raises(VerificationError, match="already signed"):
        cp.cosign_note(signed("officer1"), "officer1", KEYS["officer1"])
