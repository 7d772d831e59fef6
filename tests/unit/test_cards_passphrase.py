"""Passphrase rules for new cards: weak ones are refused with a reason, strong ones pass."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from console.errors import WeakPassphraseError
from console.quorum import PassphraseRefusedError, check_passphrase, create_card

NOW = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)

WEAK = [
    ("short", "Ab3$efgh", "at least 12"),
    ("eleven characters", "Ab3$efghijk", "at least 12"),
    ("empty", "", "at least 12"),
    ("one repeated character", "aaaaaaaaaaaaaaaaaaaaaaaa", "different characters"),
    ("three characters repeated", "abcabcabcabcabcabcabc", "different characters"),
    ("password", "password1234", "commonly used"),
    ("password with swaps and symbols", "P@ssw0rd!2027", "commonly used"),
    ("password twice", "passwordpassword", "commonly used"),
    ("correct horse", "correcthorsebatterystaple", "commonly used"),
    ("correct horse with spaces", "Correct Horse Battery Staple", "commonly used"),
    ("the product's name", "KeyCeremony2027", "commonly used"),
    ("qwerty row", "qwertyuiop123", "commonly used"),
    ("officer's name", "alice-alice-2027", "officer's name"),
    ("officer's name capitalised", "Alice1988!xyz", "officer's name"),
    ("alphabet run", "abcdefghijklmnop", "sequence"),
    ("keyboard run with a suffix", "asdfghjkl;'X9", "sequence"),
    ("digits only", "839201746153", "only digits"),
    ("lowercase only, short", "plumharborvio", "only lowercase"),
    ("uppercase only, short", "PLUMHARBORVIO", "only uppercase"),
    ("control character", "plum harbor\x1b[31m violin", "control"),
    ("zero-width space", "plum\u200bharbor violin", "control or invisible"),
    ("too long", "plum harbor violin " * 60, "longer than"),
]

STRONG = [
    "plum harbor violin seventeen",
    "Tr4in-Sta!ion-Moss",
    "crème brûlée harbor violin",
    "glacierwalnutpencilmagnetotter",
    "Alice keeps 4 quiet otters",  # contains the name, but much more besides
]


@pytest.mark.parametrize(("label", "passphrase", "reason"), WEAK, ids=[w[0] for w in WEAK])
def test_weak_passphrases_are_refused_with_a_reason(
    label: str, passphrase: str, reason: str
) -> None:
    with pytest.raises(WeakPassphraseError) as info:
        check_passphrase(passphrase, name="alice")
    error = info.value
    assert isinstance(error, PassphraseRefusedError)
    assert reason in error.reason, (label, error.reason)
    assert error.message.startswith("passphrase refused: ")
    assert error.hint
    if len(passphrase) >= 4:
        assert passphrase not in error.user_message()


@pytest.mark.parametrize("passphrase", STRONG)
def test_strong_passphrases_pass(passphrase: str) -> None:
    check_passphrase(passphrase, name="alice")


def test_create_card_refuses_a_weak_passphrase_before_making_keys() -> None:
    with pytest.raises(WeakPassphraseError, match="officer's name"):
        create_card("carol", "carol-carol-carol", now=NOW, unsafe_kdf_cost_for_tests=2**10)
