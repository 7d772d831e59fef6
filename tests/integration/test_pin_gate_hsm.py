"""The PIN gate against a real SoftHSM2 token (directly and behind `p11-kit server`).

(a) the token's user PIN, sealed to three officers 2-of-3, opens with two cards and logs in;
(b) no bad share set ever reaches C_Login: counted both by `Hsm.login_calls` and, independently,
    at the PKCS#11 boundary by the `FaultyLib` wrapper (which forwards every call to the real
    module and counts `Token.open(user_pin=...)`, i.e. C_Login);
(c) PIN re-split: C_SetPIN to a new random PIN, sealed anew; the new shares log in, the old
    shares still open (to the old PIN) but the token refuses that PIN.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from console.b64 import decode as b64url_decode
from console.b64 import encode as b64url_encode
from console.errors import CardError, PinIncorrectError, ShareError
from console.hsm import Hsm
from console.jcs import canonicalize
from console.quorum import (
    UnlockedCard,
    create_card,
    new_pin,
    open_pin,
    read_sealed_pin,
    seal_pin,
    unlock_card,
)
from tests.integration.conftest import HsmTarget
from tests.integration.faults import FaultyLib

pytestmark = pytest.mark.hsm

NOW = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
PASSPHRASE = "plum harbor violin seventeen"
OFFICERS = ("alice", "bob", "carol")


@pytest.fixture(scope="module")
def card_files() -> dict[str, bytes]:
    return {
        name: create_card(name, PASSPHRASE, now=NOW, unsafe_kdf_cost_for_tests=2**10)
        for name in (*OFFICERS, "mallory")
    }


@pytest.fixture(scope="module")
def cards(card_files: dict[str, bytes]) -> dict[str, UnlockedCard]:
    return {name: unlock_card(data, PASSPHRASE) for name, data in card_files.items()}


def seal_for(cards: dict[str, UnlockedCard], pin: bytes, token: str) -> bytes:
    recipients = [(n, cards[n].public.x25519_key()) for n in OFFICERS]
    return seal_pin(pin, recipients, 2, now=NOW, token=token)


def test_sealed_token_pin_opens_with_two_cards_and_logs_in(
    hsm_target: HsmTarget, hsm_factory: Callable[..., Hsm], cards: dict[str, UnlockedCard]
) -> None:
    sealed = seal_for(cards, hsm_target.user_pin, hsm_target.label)
    assert read_sealed_pin(sealed).token == hsm_target.label
    hsm = hsm_factory(hsm_target, login=False)
    hsm.login(open_pin(sealed, [cards["carol"], cards["alice"]]))
    assert hsm.logged_in and hsm.login_calls == 1
    # A private-object operation works only when really logged in.
    key = hsm.generate_keypair("ES256", label="pin-gate-check")
    assert key.public_key is not None


def _bad_share_sets(
    sealed: bytes, cards: dict[str, UnlockedCard], other_sealed: bytes
) -> dict[str, tuple[bytes, list[UnlockedCard]]]:
    body = json.loads(sealed)
    other = json.loads(other_sealed)

    def variant(**changes: object) -> bytes:
        return canonicalize({**body, **changes})

    tampered = json.loads(sealed)
    raw = bytearray(b64url_decode(tampered["shares"][1]["ciphertext"]))
    raw[3] ^= 0x04
    tampered["shares"][1]["ciphertext"] = b64url_encode(bytes(raw))
    pin_flipped = json.loads(sealed)
    raw = bytearray(b64url_decode(pin_flipped["pin"]["ciphertext"]))
    raw[0] ^= 0x01
    pin_flipped["pin"]["ciphertext"] = b64url_encode(bytes(raw))
    a, b, c, m = (cards[n] for n in ("alice", "bob", "carol", "mallory"))
    return {
        "one card (M-1)": (sealed, [a]),
        "no cards": (sealed, []),
        "the same card twice": (sealed, [a, a]),
        "a card that holds no share": (sealed, [a, m]),
        "a tampered share": (canonicalize(tampered), [a, b]),
        "a share from another sealed file": (
            variant(shares=[body["shares"][0], other["shares"][1], body["shares"][2]]),
            [a, b],
        ),
        "a tampered PIN ciphertext": (canonicalize(pin_flipped), [b, c]),
        "threshold edited to 1": (variant(threshold=1), [c]),
        "an unreadable file": (b"{}", [a, b]),
    }


def test_no_bad_share_set_reaches_c_login(
    hsm_target: HsmTarget, hsm_factory: Callable[..., Hsm], cards: dict[str, UnlockedCard]
) -> None:
    sealed = seal_for(cards, hsm_target.user_pin, hsm_target.label)
    other = seal_for(cards, hsm_target.user_pin, hsm_target.label)
    lib = FaultyLib.load(hsm_target.module)
    hsm = hsm_factory(hsm_target, login=False, _lib=lib)

    def unlock_and_login(data: bytes, chosen: list[UnlockedCard]) -> None:
        # What `ceremony execute` does: the gate first, C_Login only with what it returns.
        hsm.login(open_pin(data, chosen))

    cases = _bad_share_sets(sealed, cards, other)
    for label, (data, chosen) in cases.items():
        with pytest.raises(ShareError):
            unlock_and_login(data, chosen)
        assert lib.calls["C_Login"] == 0, label
        assert hsm.login_calls == 0, label
    assert len(cases) == 9
    # A wrong passphrase stops even earlier, at the card.
    with pytest.raises(CardError):
        unlock_card(b"{}", PASSPHRASE)
    assert lib.calls["C_Login"] == 0 and not hsm.logged_in
    # Positive control: the counters do see a real login.
    unlock_and_login(sealed, [cards["alice"], cards["bob"]])
    assert lib.calls["C_Login"] == 1 and hsm.login_calls == 1 and hsm.logged_in


def test_pin_resplit_on_a_real_token(
    hsm_target: HsmTarget, hsm_factory: Callable[..., Hsm], cards: dict[str, UnlockedCard]
) -> None:
    old_sealed = seal_for(cards, hsm_target.user_pin, hsm_target.label)
    first = hsm_factory(hsm_target, login=False)
    old_pin = open_pin(old_sealed, [cards["alice"], cards["bob"]])
    first.login(old_pin)
    fresh = new_pin()
    first.set_pin(old_pin, fresh)
    new_sealed = seal_for(cards, fresh, hsm_target.label)
    first.close()
    assert read_sealed_pin(new_sealed).id != read_sealed_pin(old_sealed).id

    second = hsm_factory(hsm_target, login=False)
    # The old shares still decrypt, to the old PIN, which the token now refuses.
    stale = open_pin(old_sealed, [cards["bob"], cards["carol"]])
    assert stale == hsm_target.user_pin
    with pytest.raises(PinIncorrectError):
        second.login(stale)
    assert not second.logged_in
    # Every 2-subset of the new shares logs in.
    for pair in (("alice", "bob"), ("alice", "carol"), ("bob", "carol")):
        handle = hsm_factory(hsm_target, login=False) if pair != ("alice", "bob") else second
        handle.login(open_pin(new_sealed, [cards[n] for n in pair]))
        assert handle.logged_in
        handle.close()
    # Old shares combined with new ones never rebuild anything.
    old_body, new_body = json.loads(old_sealed), json.loads(new_sealed)
    mixed = canonicalize({**new_body, "shares": [old_body["shares"][0], *new_body["shares"][1:]]})
    with pytest.raises(ShareError):
        open_pin(mixed, [cards["alice"], cards["bob"]])
