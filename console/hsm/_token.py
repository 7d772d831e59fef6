"""Finding a token and reading its state: slots, labels, serials, flags, and the PIN's state.

Shared by `Hsm` (which finds its token again after a lost connection) and `ceremony doctor`
(which reports every token without opening a session). Nothing here opens a session or logs in;
`refuse_unsafe_pin_state` is the check every login makes before it risks a PIN try.

Called with `_pkcs11.LOCK` held; pkcs11 errors from the calls here reach the caller untranslated,
except that `find_token` reports "no such token" as `TokenNotFoundError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pkcs11.exceptions as p11e
from pkcs11 import TokenFlag

from console.errors import PinIncorrectError, PinLockedError, TokenNotFoundError
from console.hsm._pkcs11 import Pkcs11Library, token_flag_words
from console.hsm.values import PinState, TokenInfo

if TYPE_CHECKING:
    from pkcs11 import Token as P11Token


def pin_text(pin: bytes) -> str:
    """A PIN as python-pkcs11 takes it: str, which the library encodes as UTF-8 itself."""
    try:
        return bytes(pin).decode("utf-8")
    except UnicodeDecodeError:
        raise PinIncorrectError(
            "the PIN is not valid UTF-8", "check how the PIN was entered or unsealed"
        ) from None


def refuse_unsafe_pin_state(info: TokenInfo) -> None:
    """Raise PinLockedError when a C_Login could lock the token or cannot succeed."""
    if info.pin_state is PinState.LOCKED:
        raise PinLockedError(
            f"the user PIN of token {info.label!r} is locked; the console did not try it",
            "the security officer must unblock the PIN before any ceremony",
        )
    if info.pin_state is PinState.FINAL_TRY:
        raise PinLockedError(
            f"token {info.label!r} is on its final PIN try; the console will not risk locking it",
            "have the security officer reset the retry counter (SO login) before trying again",
        )
    if info.pin_state is PinState.NOT_INITIALISED:
        raise PinLockedError(
            f"token {info.label!r} has no user PIN yet", "initialise the user PIN with the SO"
        )


def token_info(token: P11Token) -> TokenInfo:
    """`TokenInfo` from a python-pkcs11 token object (its C_GetTokenInfo snapshot)."""
    flags = int(token.flags)
    # Most severe first: a token may set several of these flags at once.
    if flags & TokenFlag.USER_PIN_LOCKED:
        state = PinState.LOCKED
    elif flags & TokenFlag.USER_PIN_FINAL_TRY:
        state = PinState.FINAL_TRY
    elif not flags & TokenFlag.USER_PIN_INITIALIZED:
        state = PinState.NOT_INITIALISED
    elif flags & TokenFlag.USER_PIN_COUNT_LOW:
        state = PinState.COUNT_LOW
    else:
        state = PinState.OK
    return TokenInfo(
        label=token.label,
        serial=token.serial.decode("ascii", "replace"),
        manufacturer=token.manufacturer_id,
        model=token.model,
        flags=token_flag_words(flags),
        pin_state=state,
        slot_id=int(token.slot.slot_id),
    )


def find_token(lib: Pkcs11Library, label: str | None, serial: str | None) -> P11Token:
    """The one initialised token matching `label` and/or `serial`.

    Raises: TokenNotFoundError (none visible, none matching, or several matching; the message
    lists the tokens seen), pkcs11 errors from the slot calls.
    """
    seen: list[str] = []
    matches: list[P11Token] = []
    for slot in lib.get_slots(token_present=True):
        try:
            token = slot.get_token()
        except (p11e.TokenNotPresent, p11e.TokenNotRecognised):
            continue
        if not token.flags & TokenFlag.TOKEN_INITIALIZED:
            continue
        token_serial = token.serial.decode("ascii", "replace")
        seen.append(f"{token.label!r} (serial {token_serial})")
        if label is not None and token.label != label:
            continue
        if serial is not None and token_serial != serial:
            continue
        matches.append(token)
    wanted = (
        " and ".join(
            part
            for part in (
                f"label {label!r}" if label is not None else "",
                f"serial {serial!r}" if serial is not None else "",
            )
            if part
        )
        or "any label"
    )
    if not matches and not seen:
        raise TokenNotFoundError(
            f"no token is visible through the PKCS#11 module (looking for {wanted})",
            "connect the HSM (for a network HSM: start the p11-kit server and set "
            "P11_KIT_SERVER_ADDRESS), then run `ceremony doctor`",
        )
    if not matches:
        raise TokenNotFoundError(
            f"no token with {wanted}; tokens seen: {', '.join(seen)}",
            "check the token label/serial in ceremony.toml and run `ceremony doctor`",
        )
    if len(matches) > 1:
        raise TokenNotFoundError(
            f"{len(matches)} tokens match {wanted}: {', '.join(seen)}",
            "name the token by its serial as well",
        )
    return matches[0]
