"""Officer cards: round trip, one message for every unlock failure, tamper evidence, passphrases."""

from __future__ import annotations

import json
import time
import unicodedata
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from console.b64 import decode as b64url_decode
from console.b64 import encode as b64url_encode
from console.errors import CardError, ClockError, OfficerError
from console.jcs import canonicalize
from console.quorum import (
    CARD_FORMAT,
    PRODUCTION_SCRYPT_N,
    UNLOCK_FAILED,
    OfficerPublicKeys,
    UnlockedCard,
    check_officer_name,
    create_card,
    read_card_public,
    unlock_card,
)

NOW = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
PASSPHRASE = "plum harbor violin seventeen"
TEST_COST = 2**10


def make(name: str = "alice", passphrase: str = PASSPHRASE) -> bytes:
    return create_card(name, passphrase, now=NOW, unsafe_kdf_cost_for_tests=TEST_COST)


@pytest.fixture(scope="module")
def card() -> bytes:
    return make()


def edit(data: bytes, **changes: object) -> bytes:
    obj = json.loads(data)
    obj.update(changes)
    return canonicalize(obj) + b"\n"


# --- round trip ----------------------------------------------------------------------------


def test_card_layout_and_public_part(card: bytes) -> None:
    obj = json.loads(card)
    assert obj["format"] == CARD_FORMAT and obj["name"] == "alice"
    assert obj["created_at"] == "2027-01-15T10:00:00Z"
    assert obj["kdf"]["name"] == "scrypt" and obj["kdf"]["n"] == TEST_COST
    assert obj["cipher"]["name"] == "AES-256-GCM"
    assert set(obj) == {"format", "name", "created_at", "ed25519_public", "x25519_public", "kdf",
                        "cipher", "private"}
    public = read_card_public(card)
    assert public.name == "alice"
    assert public.ed25519_public == b64url_decode(obj["ed25519_public"])
    assert public.x25519_public == b64url_decode(obj["x25519_public"])
    # No private key material is readable without the passphrase.
    assert b"PRIVATE KEY" not in card


def test_unlock_gives_keys_matching_the_public_part(card: bytes) -> None:
    unlocked = unlock_card(card, PASSPHRASE)
    assert unlocked.name == "alice"
    assert unlocked.public == read_card_public(card)
    signature = unlocked.sign(b"message")
    Ed25519PublicKey.from_public_bytes(unlocked.public.ed25519_public).verify(
        signature, b"message"
    )
    peer = X25519PrivateKey.generate()
    assert unlocked.x25519_private.exchange(peer.public_key()) == peer.exchange(
        unlocked.public.x25519_key()
    )


def test_reprs_hide_private_keys(card: bytes) -> None:
    unlocked = unlock_card(card, PASSPHRASE)
    text = repr(unlocked) + str(unlocked)
    assert "alice" in text and "hidden" in text
    raw = unlocked.ed25519_private.private_bytes_raw()
    assert raw.hex() not in text and b64url_encode(raw) not in text
    assert PASSPHRASE not in text


def test_two_cards_never_share_keys() -> None:
    a, b = read_card_public(make("alice")), read_card_public(make("bob"))
    assert a.ed25519_public != b.ed25519_public and a.x25519_public != b.x25519_public


def test_passphrase_is_unicode_normalised() -> None:
    composed = "crème brûlée harbor violin"
    data = make("alice", composed)
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert unlock_card(data, decomposed).name == "alice"


def test_production_cost_is_written_and_unlocks_in_reasonable_time() -> None:
    data = create_card("alice", PASSPHRASE, now=NOW)
    assert json.loads(data)["kdf"]["n"] == PRODUCTION_SCRYPT_N == 2**17
    start = time.perf_counter()
    unlock_card(data, PASSPHRASE)
    elapsed = time.perf_counter() - start
    # ~0.3 s on the 2-core test machine; the bound only catches a runaway cost.
    assert elapsed < 10


# --- unlock failures: one message, nothing changes -------------------------------------------


def test_wrong_passphrase_is_one_clear_error_and_changes_nothing(card: bytes) -> None:
    before = bytes(card)
    with pytest.raises(CardError) as info:
        unlock_card(card, PASSPHRASE + "x")
    assert info.value.message == UNLOCK_FAILED == "card could not be unlocked with that passphrase"
    assert info.value.hint
    assert PASSPHRASE not in info.value.user_message()
    assert card == before
    assert unlock_card(card, PASSPHRASE).name == "alice"


def test_every_unlock_failure_has_the_same_message(card: bytes) -> None:
    other = read_card_public(make("bob"))
    failures = {
        "wrong passphrase": (card, "not the passphrase at all"),
        "empty passphrase": (card, ""),
        "truncated": (card[:-40], PASSPHRASE),
        "not json": (b"\x00\xff garbage", PASSPHRASE),
        "empty file": (b"", PASSPHRASE),
        "renamed": (edit(card, name="mallory"), PASSPHRASE),
        "other ed25519 key": (
            edit(card, ed25519_public=b64url_encode(other.ed25519_public)), PASSPHRASE),
        "other x25519 key": (
            edit(card, x25519_public=b64url_encode(other.x25519_public)), PASSPHRASE),
        "other date": (edit(card, created_at="2030-01-01T00:00:00Z"), PASSPHRASE),
        "lower kdf cost": (edit(card, kdf={**json.loads(card)["kdf"], "n": 2**11}), PASSPHRASE),
        "huge kdf cost": (edit(card, kdf={**json.loads(card)["kdf"], "n": 2**30}), PASSPHRASE),
        "other format": (edit(card, format="key-ceremony-card/v2"), PASSPHRASE),
        "extra field": (edit(card, note="hi"), PASSPHRASE),
    }
    for label, (data, passphrase) in failures.items():
        with pytest.raises(CardError) as info:
            unlock_card(data, passphrase)
        assert info.value.message == UNLOCK_FAILED, label


def test_every_single_byte_change_is_refused(card: bytes) -> None:
    """Flip one bit at every position of the file: no edited card ever unlocks."""
    for position in range(len(card)):
        mutated = bytearray(card)
        mutated[position] ^= 0x01
        with pytest.raises(CardError) as info:
            unlock_card(bytes(mutated), PASSPHRASE)
        assert info.value.message == UNLOCK_FAILED, position


def test_swapped_private_part_is_refused() -> None:
    """Bob's encrypted keys under Alice's public part (same passphrase) do not unlock."""
    alice, bob = json.loads(make("alice")), json.loads(make("bob"))
    franken = {**alice, "private": bob["private"], "kdf": bob["kdf"], "cipher": bob["cipher"]}
    with pytest.raises(CardError, match=UNLOCK_FAILED):
        unlock_card(canonicalize(franken), PASSPHRASE)


def test_unlocked_card_refuses_mismatched_keys(card: bytes) -> None:
    public = read_card_public(card)
    with pytest.raises(CardError):
        UnlockedCard(public, Ed25519PrivateKey.generate(), X25519PrivateKey.generate())


def test_unreadable_card_public_part() -> None:
    for data in (b"", b"{}", b"[1]", b'{"format":"key-ceremony-card/v1"}'):
        with pytest.raises(CardError, match="not a readable officer card"):
            read_card_public(data)


# --- names, costs and times ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["", " alice", "al ice", "alice+1", "a" * 33, "-x", "al\nice",
                                  "ålice"])
def test_invalid_officer_names(name: str) -> None:
    with pytest.raises(OfficerError):
        check_officer_name(name)
    with pytest.raises(OfficerError):
        make(name)


def test_valid_officer_names() -> None:
    for name in ("alice", "Bob", "carol.smith", "dave_2", "e-1", "a" * 32):
        assert check_officer_name(name) == name


def test_unsafe_cost_bounds_and_naive_time() -> None:
    for cost in (2**9, 1000, 2**19):
        with pytest.raises(CardError, match="scrypt cost"):
            create_card("alice", PASSPHRASE, now=NOW, unsafe_kdf_cost_for_tests=cost)
    with pytest.raises(ClockError):
        create_card("alice", PASSPHRASE, now=datetime(2027, 1, 15),
                    unsafe_kdf_cost_for_tests=TEST_COST)


def test_officer_public_keys_enrollment_data(card: bytes) -> None:
    public = read_card_public(card)
    data = public.enrollment_data()
    assert data == {
        "name": "alice",
        "ed25519": b64url_encode(public.ed25519_public),
        "x25519": b64url_encode(public.x25519_public),
    }
    assert OfficerPublicKeys("alice", public.ed25519_public, public.x25519_public) == public
