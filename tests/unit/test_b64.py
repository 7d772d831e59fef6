"""console.b64: strict, canonical, unpadded base64url (RFC 4648 section 5)."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console import b64
from console.errors import ConsoleError

# RFC 4648 section 10 vectors, in the URL-safe alphabet and without padding, plus the two
# characters where base64url differs from base64.
VECTORS = [
    (b"", ""),
    (b"f", "Zg"),
    (b"fo", "Zm8"),
    (b"foo", "Zm9v"),
    (b"foob", "Zm9vYg"),
    (b"fooba", "Zm9vYmE"),
    (b"foobar", "Zm9vYmFy"),
    (b"\xfb\xff", "-_8"),
    (b"\xff\xff\xfe", "___-"),
]


@pytest.mark.parametrize(("raw", "text"), VECTORS, ids=[t or "empty" for _, t in VECTORS])
def test_vectors(raw: bytes, text: str) -> None:
    assert b64.encode(raw) == text
    assert b64.decode(text) == raw


@pytest.mark.parametrize(
    "text",
    [
        "Zg==", "Zm8=", "Zg=", "=",  # padding
        " Zg", "Zg ", "Zg\n", "Z g", "Zm9v\r\n", "\tZm9v",  # whitespace
        "Zg+/", "+/8", "Zm9v/", "Zm9v.", "Zg$", "Zé", "Ｚｇ", "Zm9v\x00",  # foreign characters
        "Z", "Zm9vY",  # lengths no encoding has (4k + 1)
        "Zh", "Zm9", "Zm-", "_-9",  # non-zero unused bits: another spelling of the same bytes
    ],
)  # fmt: skip
def test_refused(text: str) -> None:
    with pytest.raises(b64.Base64urlError):
        b64.decode(text)


@pytest.mark.parametrize("value", [b"Zg", None, 1, ["Zg"], bytearray(b"Zg")], ids=repr)
def test_non_text_refused(value: object) -> None:
    with pytest.raises(b64.Base64urlError, match=r"^not text but"):
        b64.decode(value)


def test_non_canonical_spelling_would_decode_to_the_same_bytes() -> None:
    # Why canonical matters: the lenient stdlib decoder maps both spellings to b"f".
    assert base64.urlsafe_b64decode("Zh==") == base64.urlsafe_b64decode("Zg==") == b"f"
    assert b64.decode("Zg") == b"f"
    with pytest.raises(b64.Base64urlError, match="canonical"):
        b64.decode("Zh")


@pytest.mark.parametrize("text", ["Zg==", "Z", "Zh", 7], ids=repr)
def test_error_message_is_a_predicate(text: object) -> None:
    # Callers write f"{field} is {error}".
    with pytest.raises(b64.Base64urlError, match=r"^not "):
        b64.decode(text)


def test_error_is_a_value_error_and_not_a_console_error() -> None:
    # Callers at trust boundaries wrap it into their own domain error, naming the field.
    assert issubclass(b64.Base64urlError, ValueError)
    assert not issubclass(b64.Base64urlError, ConsoleError)


@given(st.binary(max_size=300))
def test_round_trip(raw: bytes) -> None:
    text = b64.encode(raw)
    assert "=" not in text and text.isascii()
    assert len(text) == -(-len(raw) * 4 // 3)  # ceil(4n/3): no padding
    assert b64.decode(text) == raw


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ \n",
               max_size=40))  # fmt: skip
def test_every_accepted_text_is_canonical(text: str) -> None:
    # One value, one spelling: whatever decode accepts, encode gives back unchanged.
    try:
        raw = b64.decode(text)
    except b64.Base64urlError:
        return
    assert b64.encode(raw) == text


@given(st.text(max_size=40))
def test_decode_raises_only_its_own_error(text: str) -> None:
    with contextlib.suppress(b64.Base64urlError):
        b64.decode(text)
