"""`TokenSession`: one kept-alive R/W session on one token, its login, and its recovery.

Before `login` the session is public; `login` replaces it with a logged-in one. When the session
dies (`SessionHandleInvalid`, `SessionClosed`, `DeviceRemoved`, `DeviceError`, ...) `run` reopens
it once, logs in again with the PIN held in memory, and, unless the operation changes the token,
runs it again. Every session change bumps `generation`: object handles found in an older
generation are dead (`_objects.KeyCache` checks it). Operations that change the token (generate,
destroy, C_SetPIN) are never repeated after such a loss: their outcome is unknown, and the caller
is told to reconcile.

Every method must be called with `_pkcs11.LOCK` held (the `Hsm` facade takes it); every pkcs11
error leaves as a `console.errors.HsmError` subclass.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import pkcs11.exceptions as p11e
from pkcs11 import Mechanism

from console.errors import HsmError, HsmUnavailableError, PinIncorrectError, TokenNotFoundError
from console.hsm._pkcs11 import (
    CONNECTION_LOST,
    DEVICE_LOST,
    RECONCILE_HINT,
    Modules,
    Pkcs11Library,
    is_p11kit_client,
    key_length_range,
    translate,
)
from console.hsm._token import find_token, pin_text, refuse_unsafe_pin_state, token_info
from console.hsm.values import TokenInfo

if TYPE_CHECKING:
    from pkcs11 import Session as P11Session
    from pkcs11 import Token as P11Token

T = TypeVar("T")


class TokenSession:
    """The session state of one `Hsm` handle (see the module docstring). Private to `console.hsm`.

    `login_calls` counts the C_Login calls made (the quorum tests assert bad shares cause none).
    """

    def __init__(
        self, module: str, lib: Pkcs11Library, token: P11Token, session: P11Session | None,
        offered: frozenset[int],
    ) -> None:
        self.module = module
        self.label: str = token.label
        self.network_path = is_p11kit_client(lib)
        self.offered = offered  # the mechanisms the token lists, re-read after each reopen
        self.generation = 0
        self.login_calls = 0
        self.closed = False
        self._lib = lib
        self._token = token
        self._serial: bytes = token.serial
        self._session: P11Session | None = session
        self._pin: bytes | None = None

    @classmethod
    def open(
        cls, module: str, lib: Pkcs11Library, label: str | None, serial: str | None
    ) -> TokenSession:
        """Find the one matching token of `lib` (loaded from `module`), open a public session."""
        try:
            token = find_token(lib, label, serial)
        except (TokenNotFoundError, p11e.PKCS11Error) as first:
            if isinstance(first, p11e.PKCS11Error) and not isinstance(first, CONNECTION_LOST):
                raise translate(first, "looking for the token") from first
            # SoftHSM2 sees new tokens, and p11-kit's client a restarted server, only after
            # C_Finalize + C_Initialize; do that only when no session in this process uses the
            # module.
            if not Modules.rescan(module, lib):
                if isinstance(first, HsmError):
                    raise
                raise translate(first, "looking for the token") from first
            try:
                token = find_token(lib, label, serial)
            except p11e.PKCS11Error as e:
                raise translate(e, "looking for the token") from e
        try:
            session = token.open(rw=True)
            offered = frozenset(token.slot.get_mechanisms())
        except p11e.PKCS11Error as e:
            raise translate(e, "opening a session") from e
        Modules.opened(module)
        return cls(module, lib, token, session, offered)

    @property
    def logged_in(self) -> bool:
        return self._pin is not None

    @property
    def session(self) -> P11Session:
        """The live python-pkcs11 session (after a successful `run`)."""
        if self._session is None:
            raise HsmUnavailableError("the HSM session was lost", RECONCILE_HINT)
        return self._session

    def close(self) -> None:
        """Log out and close the session. Safe to call twice; never raises for a dead device."""
        if self.closed:
            return
        self.closed = True
        self._pin = None
        self.generation += 1
        session, self._session = self._session, None
        try:
            if session is not None:
                session.close()  # C_Logout too, when this session logged in
        except p11e.PKCS11Error:
            pass  # the device is gone; nothing left to release on it
        finally:
            Modules.closed(self.module)

    # --- token and PIN -------------------------------------------------------------------------

    def token_info(self) -> TokenInfo:
        return token_info(self.run("reading the token information", lambda _s: self._fresh()))

    def login(self, pin: bytes) -> None:
        self.require_open()
        if self._pin is not None:
            if hmac.compare_digest(self._pin, pin):
                return
            raise HsmError(
                "this console handle is already logged in",
                "log out first to log in with another PIN",
            )
        self._login(pin)

    def logout(self) -> None:
        self.require_open()
        if self._pin is None:
            return
        self._pin = None
        self._drop()  # a dead session is logged out by definition
        try:
            self._session = self._token.open(rw=True)
        except p11e.PKCS11Error as e:
            raise translate(e, "reopening a public session") from e

    def set_pin(self, old: bytes, new: bytes) -> None:
        self.require_login("changing the PIN")
        refuse_unsafe_pin_state(token_info(self._fresh()))
        old_text, new_text = pin_text(old), pin_text(new)
        if not new_text:
            raise PinIncorrectError("the new PIN is empty", "choose a new PIN")
        # If the session dies mid-change the PIN is unknown: no automatic re-login with either
        # PIN (a wrong guess would cost a try); the officers log in again.
        self.run(
            "changing the PIN",
            lambda s: s.set_pin(old_text, new_text),
            mutating=True,
            relogin=False,
        )
        self._pin = bytes(new)

    def set_so_pin(self, old: bytes, new: bytes) -> None:
        self.require_open()
        if self._pin is not None:
            raise HsmError("log out before changing the SO PIN", "call logout() first")
        old_text, new_text = pin_text(old), pin_text(new)
        try:
            session = self._token.open(rw=True, so_pin=old_text)
        except p11e.PKCS11Error as e:
            raise translate(e, "logging in as security officer") from e
        try:
            session.set_pin(old_text, new_text)
        except p11e.PKCS11Error as e:
            raise translate(e, "changing the SO PIN") from e
        finally:
            with contextlib.suppress(p11e.PKCS11Error):
                session.close()

    # --- capabilities and extra sessions -------------------------------------------------------

    def key_sizes(self, mechanism: int) -> tuple[int, int] | None:
        """(min, max) key size the token reports for `mechanism`, None if it does not say."""
        self.require_open()
        try:
            info = self._token.slot.get_mechanism_info(Mechanism(mechanism))
        except (p11e.PKCS11Error, ValueError):  # ValueError: a vendor mechanism's number
            return None
        return key_length_range(info)

    def open_probe_session(self, doing: str) -> P11Session:
        """A new public read-only session, for a second look that does not trust this one.

        Public: closing it does no C_Logout, so this handle stays logged in.
        """
        try:
            return self._token.open(rw=False)
        except p11e.PKCS11Error as e:
            raise translate(e, doing) from e

    # --- running operations --------------------------------------------------------------------

    def require_open(self) -> None:
        if self.closed:
            raise HsmError("this HSM handle is closed", "open the workspace's HSM again")

    def require_login(self, doing: str) -> None:
        self.require_open()
        if self._pin is None:
            raise HsmError(
                f"not logged in to the token for {doing}",
                "unlock the PIN with the officers' quorum first",
            )

    def run(
        self, doing: str, op: Callable[[P11Session], T], *, mutating: bool = False,
        relogin: bool = True,
    ) -> T:
        """Run `op(session)`; on a dead session reopen once and, unless mutating, run it again.

        Raises: HsmUnavailableError (the token cannot be reached, or a mutating operation was
        cut: its outcome is unknown), the translation of any other pkcs11 error, and whatever
        `op` raises itself.
        """
        self.require_open()
        if self._session is None:
            self._reopen(None)
        else:
            try:
                return op(self._session)
            except p11e.PKCS11Error as e:
                self._recover(doing, e, mutating=mutating, relogin=relogin)
        return self._last_try(doing, op)

    def run_again(self, doing: str, op: Callable[[P11Session], T], error: p11e.PKCS11Error) -> T:
        """What `run(doing, op)` does after its first try raised `error`: a caller that made
        that first try itself, in the current session (`Hsm.sign`'s fast path, which knows the
        session is open and current because it holds an object of its `generation`), hands the
        error over here to be recovered from, or translated, exactly as `run` would.
        """
        self._recover(doing, error, mutating=False, relogin=True)
        return self._last_try(doing, op)

    def _recover(self, doing: str, error: p11e.PKCS11Error, *, mutating: bool,
                 relogin: bool) -> None:
        """After a first try failed with `error`: reopen the session if it died, else raise."""
        if isinstance(error, CONNECTION_LOST):
            pass
        elif isinstance(error, p11e.UserNotLoggedIn) and self._pin is not None:
            pass  # the login was lost with the session (reaped, or device reset)
        else:
            raise translate(error, doing) from error
        self._reopen(error, relogin=relogin)
        if mutating:
            raise HsmUnavailableError(
                f"{doing} was interrupted ({type(error).__name__}); its outcome on the token "
                "is unknown",
                "the session was reopened; run `ceremony reconcile` before continuing",
            ) from error

    def _last_try(self, doing: str, op: Callable[[P11Session], T]) -> T:
        if self._session is None:
            raise HsmUnavailableError(f"HSM unavailable while {doing}", RECONCILE_HINT)
        try:
            return op(self._session)
        except CONNECTION_LOST as e:
            self.drop_after_loss()
            raise HsmUnavailableError(
                f"HSM unavailable while {doing} ({type(e).__name__})", RECONCILE_HINT
            ) from e
        except p11e.PKCS11Error as e:
            raise translate(e, doing) from e

    def drop_after_loss(self) -> None:
        """Forget a session that died outside `run`; the next `run` reopens it."""
        self._drop()

    # --- internals -----------------------------------------------------------------------------

    def _fresh(self) -> P11Token:
        """The token object re-read (C_GetTokenInfo): flags change with every PIN try."""
        return self._token.slot.get_token()

    def _login(self, pin: bytes) -> None:
        text = pin_text(pin)
        try:
            info = token_info(self._fresh())
        except p11e.PKCS11Error as e:
            raise translate(e, "reading the token flags before login") from e
        refuse_unsafe_pin_state(info)
        self.login_calls += 1
        try:
            # python-pkcs11 logs in only through Token.open; a failed C_Login leaves that new
            # session handle open inside the module (it is freed at C_Finalize).
            logged_in = self._token.open(rw=True, user_pin=text)
        except p11e.PKCS11Error as e:
            raise translate(e, "logging in") from e
        old, self._session = self._session, logged_in
        self._pin = bytes(pin)
        self.generation += 1
        if old is not None:
            with contextlib.suppress(p11e.PKCS11Error):  # public session: no C_Logout
                old.close()

    def _drop(self) -> None:
        old, self._session = self._session, None
        self.generation += 1
        if old is not None:
            with contextlib.suppress(p11e.PKCS11Error):
                old.close()

    def _reopen(self, cause: BaseException | None, *, relogin: bool = True) -> None:
        """Replace a dead session: find the token again, open a session, log in again."""
        self._drop()
        if not relogin:
            self._pin = None
        # A lost device (or an earlier failed reopen, cause None) may need the module finalised
        # and initialised again: that reconnects p11-kit's client to a restarted server. Only
        # done when this handle is the module's only user.
        rescanned = (cause is None or isinstance(cause, DEVICE_LOST)) and Modules.rescan(
            self.module, self._lib, allowed_handles=1
        )
        while True:
            try:
                token = find_token(self._lib, self.label, self._serial.decode("ascii", "replace"))
                self.offered = frozenset(token.slot.get_mechanisms())
                session = None if self._pin is not None else token.open(rw=True)
                break
            except (TokenNotFoundError, p11e.PKCS11Error) as e:
                if not rescanned and (
                    isinstance(e, (TokenNotFoundError, *DEVICE_LOST))
                    and Modules.rescan(self.module, self._lib, allowed_handles=1)
                ):
                    rescanned = True
                    continue
                raise HsmUnavailableError(
                    f"HSM unavailable: token {self.label!r} cannot be reached again "
                    f"({type(cause or e).__name__})",
                    RECONCILE_HINT,
                ) from e
        self._token = token
        self._session = session
        if self._pin is not None:
            # Straight to a logged-in session (flags checked first, like any login).
            pin, self._pin = self._pin, None
            self._login(pin)
