"""The PIN gate: every M-subset of N cards opens the PIN, every smaller or bad set fails."""

from __future__ import annotations

import itertools
import json
import os
import string
from datetime import UTC, datetime

import pytest
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from console.b64 import decode as b64url_decode
from console.b64 import encode as b64url_encode
from console.errors import OfficerError, QuorumError, ShareError
from console.jcs import canonicalize
from console.quorum import (
    PIN_FORMAT,
    UnlockedCard,
    create_card,
    new_pin,
    open_pin,
    read_sealed_pin,
    seal_pin,
    unlock_card,
)
from console.quorum.pin_gate import _share_binding, _share_key

NOW = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
PASSPHRASE = "plum harbor violin seventeen"
NAMES = ("alice", "bob", "carol", "dave", "erin")
PIN = b"Xq7-test-pin-9f2Lk0"


@pytest.fixture(scope="module")
def cards() -> dict[str, UnlockedCard]:
    made = {
        name: unlock_card(
            create_card(name, PASSPHRASE, now=NOW, unsafe_kdf_cost_for_tests=2**10), PASSPHRASE
        )
        for name in (*NAMES, "mallory")
    }
    # A second card for alice, as if she had made a new one without re-enrolling.
    made["alice-new"] = unlock_card(
        create_card("alice", PASSPHRASE, now=NOW, unsafe_kdf_cost_for_tests=2**10), PASSPHRASE
    )
    return made


def seal(cards: dict[str, UnlockedCard], names: tuple[str, ...], m: int, pin: bytes = PIN) -> bytes:
    return seal_pin(pin, [(n, cards[n].public.x25519_key()) for n in names], m, now=NOW,
                    token="ceremony-token")


def assert_share_error(sealed: bytes, chosen: list[UnlockedCard], match: str) -> ShareError:
    with pytest.raises(ShareError, match=match) as info:
        open_pin(sealed, chosen)
    error = info.value
    assert isinstance(error, QuorumError)
    assert PIN.decode() not in error.user_message()
    return error


@pytest.mark.parametrize(("m", "n"), [(1, 1), (1, 3), (2, 3), (3, 3), (2, 4), (3, 5), (4, 5)])
def test_every_m_subset_opens_and_every_smaller_subset_fails(
    cards: dict[str, UnlockedCard], m: int, n: int
) -> None:
    names = NAMES[:n]
    sealed = seal(cards, names, m)
    for subset in itertools.combinations(names, m):
        for order in (subset, subset[::-1]):
            assert open_pin(sealed, [cards[x] for x in order]) == PIN
    for subset in itertools.combinations(names, m - 1):
        error = assert_share_error(sealed, [cards[x] for x in subset], "required officers")
        assert (error.have, error.need) == (m - 1, m)
    # More than M cards also open it.
    assert open_pin(sealed, [cards[x] for x in names]) == PIN


def test_sealed_file_header(cards: dict[str, UnlockedCard]) -> None:
    sealed = seal(cards, NAMES[:3], 2)
    info = read_sealed_pin(sealed)
    assert (info.threshold, info.officers, info.token) == (2, NAMES[:3], "ceremony-token")
    assert info.created_at == NOW
    assert info.ledger_data() == {"officers": list(NAMES[:3]), "threshold": 2,
                                  "sealed_id": info.id}
    body = json.loads(sealed)
    assert body["format"] == PIN_FORMAT
    assert [s["index"] for s in body["shares"]] == [1, 2, 3]
    assert PIN not in sealed and b64url_encode(PIN).encode() not in sealed
    # Each seal draws a new key, file id and shares.
    again = json.loads(seal(cards, NAMES[:3], 2))
    assert again["id"] != body["id"] and again["pin"] != body["pin"]


def test_duplicate_card_fails(cards: dict[str, UnlockedCard]) -> None:
    sealed = seal(cards, NAMES[:3], 2)
    assert_share_error(sealed, [cards["alice"], cards["alice"]], "given twice")
    assert_share_error(sealed, [cards["alice"], cards["bob"], cards["alice"]], "given twice")


def test_foreign_card_fails(cards: dict[str, UnlockedCard]) -> None:
    sealed = seal(cards, NAMES[:3], 2)
    assert_share_error(sealed, [cards["alice"], cards["mallory"]], "mallory holds no share")
    assert_share_error(sealed, [cards["dave"], cards["bob"]], "dave holds no share")
    assert_share_error(sealed, [cards["alice-new"], cards["bob"]], "not the card this PIN")


def test_no_cards_fail(cards: dict[str, UnlockedCard]) -> None:
    error = assert_share_error(seal(cards, NAMES[:3], 2), [], "0 of 2")
    assert (error.have, error.need) == (0, 2)


def test_share_from_another_sealed_file_fails(cards: dict[str, UnlockedCard]) -> None:
    first = json.loads(seal(cards, NAMES[:3], 2))
    second = json.loads(seal(cards, NAMES[:3], 2))
    for position in range(3):
        mixed = {**first, "shares": list(first["shares"])}
        mixed["shares"][position] = second["shares"][position]
        name = NAMES[position]
        others = [cards[n] for n in NAMES[:3] if n != name][:1]
        assert_share_error(canonicalize(mixed), [cards[name], *others],
                           f"{name}'s share does not decrypt")


def test_same_pin_sealed_twice_does_not_mix(cards: dict[str, UnlockedCard]) -> None:
    """Even for the same PIN and officers, a share never opens in another file."""
    a = json.loads(seal(cards, NAMES[:2], 2))
    b = json.loads(seal(cards, NAMES[:2], 2))
    mixed = {**a, "shares": [a["shares"][0], b["shares"][1]]}
    assert_share_error(canonicalize(mixed), [cards["alice"], cards["bob"]],
                       "bob's share does not decrypt")


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "ephemeral"])
def test_tampered_share_fails(cards: dict[str, UnlockedCard], field: str) -> None:
    body = json.loads(seal(cards, NAMES[:3], 2))
    raw = bytearray(b64url_decode(body["shares"][1][field]))
    raw[0] ^= 0x01
    body["shares"][1][field] = b64url_encode(bytes(raw))
    assert_share_error(canonicalize(body), [cards["alice"], cards["bob"]],
                       "bob's share does not decrypt")
    # The untouched shares still open the PIN.
    assert open_pin(canonicalize(body), [cards["alice"], cards["carol"]]) == PIN


def test_swapped_share_entries_fail(cards: dict[str, UnlockedCard]) -> None:
    """Moving bob's sealed share under alice's name (and index) does not decrypt for alice."""
    body = json.loads(seal(cards, NAMES[:3], 2))
    a, b = body["shares"][0], body["shares"][1]
    body["shares"][0] = {**b, "officer": "alice", "index": 1, "x25519": a["x25519"]}
    assert_share_error(canonicalize(body), [cards["alice"], cards["carol"]],
                       "alice's share does not decrypt")


def test_wrong_share_sealed_by_an_attacker_fails_on_the_pin_tag(
    cards: dict[str, UnlockedCard],
) -> None:
    """A well-formed share encrypted anew to bob's key (but not a share of K) decrypts, and
    Shamir then silently yields a wrong K: the PIN's AES-GCM tag must catch it."""
    body = json.loads(seal(cards, NAMES[:3], 2))
    ephemeral = X25519PrivateKey.generate()
    eph_raw = ephemeral.public_key().public_bytes_raw()
    bob_key = cards["bob"].public.x25519_public
    binding = _share_binding(body["id"], "bob", 2, bob_key, eph_raw)
    nonce = os.urandom(12)
    box = AESGCM(_share_key(ephemeral.exchange(cards["bob"].public.x25519_key()), binding)
                 ).encrypt(nonce, os.urandom(16), binding)
    body["shares"][1].update(ephemeral=b64url_encode(eph_raw), nonce=b64url_encode(nonce),
                             ciphertext=b64url_encode(box))
    error = assert_share_error(canonicalize(body), [cards["alice"], cards["bob"]],
                               "do not rebuild the PIN key")
    assert error.need == 2


def test_pycryptodome_shamir_really_is_silent_on_bad_shares() -> None:
    """The reason the AES-GCM tag is the check (guards the assumption, not our code)."""
    secret = os.urandom(16)
    shares = Shamir.split(2, 3, secret)
    bad = (shares[1][0], bytes(16))
    assert Shamir.combine([shares[0], bad]) != secret
    assert Shamir.combine(shares[:1]) != secret


@pytest.mark.parametrize(
    ("label", "change"),
    [
        ("threshold lowered", {"threshold": 1}),
        ("token relabelled", {"token": "other-token"}),
        ("date changed", {"created_at": "2027-01-16T10:00:00Z"}),
    ],
)
def test_tampered_header_fails(
    cards: dict[str, UnlockedCard], label: str, change: dict[str, object]
) -> None:
    body = json.loads(seal(cards, NAMES[:3], 2))
    body.update(change)
    tampered = canonicalize(body)
    chosen = [cards["alice"], cards["bob"]]
    assert_share_error(tampered, chosen, "do not rebuild the PIN key")
    # With the threshold lowered to 1, one card passes the count; the PIN's tag still fails.
    assert_share_error(tampered, chosen[:1], "do not rebuild|1 of 2 required")


def test_tampered_pin_ciphertext_fails(cards: dict[str, UnlockedCard]) -> None:
    body = json.loads(seal(cards, NAMES[:3], 2))
    raw = bytearray(b64url_decode(body["pin"]["ciphertext"]))
    raw[-1] ^= 0x80
    body["pin"]["ciphertext"] = b64url_encode(bytes(raw))
    assert_share_error(canonicalize(body), [cards["alice"], cards["bob"]], "do not rebuild")


def test_renamed_recipient_fails(cards: dict[str, UnlockedCard]) -> None:
    """Relabelling bob's entry as mallory's (with mallory's key) gives mallory nothing."""
    body = json.loads(seal(cards, NAMES[:3], 2))
    body["shares"][1]["officer"] = "mallory"
    body["shares"][1]["x25519"] = b64url_encode(cards["mallory"].public.x25519_public)
    assert_share_error(canonicalize(body), [cards["alice"], cards["mallory"]],
                       "mallory's share does not decrypt")


@pytest.mark.parametrize(
    "sealed",
    [b"", b"{}", b"not json", b'{"format":"key-ceremony-pin/v1"}', b"[]"],
)
def test_unreadable_sealed_file(cards: dict[str, UnlockedCard], sealed: bytes) -> None:
    assert_share_error(sealed, [cards["alice"], cards["bob"]], "not readable")
    with pytest.raises(ShareError, match="not readable"):
        read_sealed_pin(sealed)


def test_malformed_share_list_is_refused(cards: dict[str, UnlockedCard]) -> None:
    body = json.loads(seal(cards, NAMES[:3], 2))
    variants = [
        {**body, "shares": body["shares"] + [body["shares"][0]]},  # duplicate officer
        {**body, "shares": body["shares"][::-1]},  # indexes out of order
        {**body, "threshold": 4},
        {**body, "threshold": 0},
        {**body, "extra": 1},
    ]
    for variant in variants:
        with pytest.raises(ShareError, match="not readable"):
            open_pin(canonicalize(variant), [cards["alice"], cards["bob"]])


def test_seal_refuses_impossible_splits(cards: dict[str, UnlockedCard]) -> None:
    recipients = [(n, cards[n].public.x25519_key()) for n in NAMES[:3]]
    for m in (0, 4):
        with pytest.raises(ShareError, match="cannot split"):
            seal_pin(PIN, recipients, m, now=NOW)
    with pytest.raises(ShareError, match="cannot split"):
        seal_pin(PIN, [], 1, now=NOW)
    with pytest.raises(ShareError, match="named twice"):
        seal_pin(PIN, [recipients[0], recipients[0]], 1, now=NOW)
    with pytest.raises(ShareError, match="named twice"):
        seal_pin(PIN, [recipients[0], ("zed", recipients[0][1])], 1, now=NOW)
    with pytest.raises(OfficerError):
        seal_pin(PIN, [("bad name", recipients[0][1])], 1, now=NOW)
    for pin in (b"", b"x" * 256):
        with pytest.raises(ValueError):
            seal_pin(pin, recipients, 2, now=NOW)


def test_new_pin() -> None:
    pins = {new_pin() for _ in range(50)}
    assert len(pins) == 50
    for pin in pins:
        assert len(pin) == 24
        assert set(pin.decode()) <= set(string.ascii_letters + string.digits)
    assert len(new_pin(64)) == 64
    with pytest.raises(ValueError):
        new_pin(4)
