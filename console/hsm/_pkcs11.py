"""The boundary with python-pkcs11: the process-wide lock, module loading, error translation.

Three facts about python-pkcs11 0.10.1 and the modules we drive shape this file:

* python-pkcs11 releases the GIL around every C call and calls `C_Initialize(NULL)`, which tells
  SoftHSM2 to run without mutexes: two threads inside the module at once crash it. `LOCK` is the
  one `threading.RLock` that every PKCS#11 call in the console takes, including the full
  consumption of `get_objects` iterators (an open search holds the session's operation state).
* `pkcs11.lib(path)` is cached per path for the life of the process, and a module reads some of
  its configuration only when it is loaded or initialised:
  - SoftHSM2 reads `SOFTHSM2_CONF` and scans its token directory at `C_Initialize`; a token made
    later (e.g. by `softhsm2-util --init-token`) stays invisible until the module is finalised
    and initialised again, which invalidates every session of the process.
  - p11-kit's client reads `P11_KIT_SERVER_ADDRESS` in `C_GetFunctionList`, i.e. when the shared
    object is loaded; only unloading and loading it again picks up a new address. After the
    server connection drops, every call fails with `DeviceError` until `C_Finalize` +
    `C_Initialize` reconnects.
  `Modules` therefore counts the open `Hsm` handles per module and only rescans (finalise and
  initialise) or reloads a module when no handle is open, so no live session is ever cut.
* Login state is per token per process (PKCS#11 section 5.6): a second `C_Login` raises
  `UserAlreadyLoggedIn`, and closing the last logged-in session logs every session out.

Every pkcs11 exception is turned into a `console.errors.HsmError` subclass here, once.

A call that never returns (a network HSM whose `p11-kit server` stopped answering, a wedged
device) cannot be interrupted: the C call holds the thread. `LOCK` therefore carries a watchdog:
when it has been held for `CEREMONY_HSM_TIMEOUT` seconds (default 25, give or take the quarter
second between two looks; key generation gets `SLOW_CALL_GRACE` more) the process writes one
`ceremony: error:` line and exits 1. Exiting at any instant is safe: the ledger's journal makes
every instant resumable (tests/reliability/test_kills_anywhere.py kills the console at hundreds
of them).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import pkcs11
import pkcs11.exceptions as p11e
from pkcs11 import Mechanism, MechanismInfo, TokenFlag
from pkcs11._pkcs11 import (  # type: ignore[attr-defined]  # absent from its .pyi
    SearchIter as _SearchIter,
)
from pkcs11._pkcs11 import (  # type: ignore[attr-defined]  # absent from its .pyi
    Session as _Session,
)

from console.errors import (
    HsmError,
    HsmModuleError,
    HsmUnavailableError,
    MechanismNotSupportedError,
    PinIncorrectError,
    PinLockedError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pkcs11 import Attribute
    from pkcs11 import Object as P11Object
    from pkcs11 import Session as P11Session
    from pkcs11 import Slot as P11Slot

TIMEOUT_VARIABLE: Final = "CEREMONY_HSM_TIMEOUT"
DEFAULT_TIMEOUT: Final = 25.0
SLOW_CALL_GRACE: Final = 300.0
"""Extra seconds for calls that are slow by nature (generating an RSA key on a small HSM)."""

_TICK: Final = 0.25
"""Seconds between two looks of the watchdog at the lock."""


class WatchedLock:
    """The process-wide RLock around every PKCS#11 call, with the watchdog described above.

    Taken around every signature, so an acquire is kept to the RLock and two counters (about
    1 us in situ, ~1.5 % of a SoftHSM2 ES256 signature): the watchdog reads the clock itself,
    timing a hold from the first look that sees it (at most `_TICK` after it began), and it is
    started at the first acquire of the process (and of a forked child, which inherits no
    threads: `_after_fork`) and never leaves its loop, so no per-call liveness check
    (`Thread.is_alive`) is needed.
    """

    __slots__ = ("_depth", "_grace", "_holds", "_lock", "_watchdog")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._holds = 0  # outermost acquisitions so far: the watchdog tells one hold from the next
        self._grace = 0.0
        self._watchdog: threading.Thread | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, timeout)
        if got:
            self._depth += 1
            if self._depth == 1:
                self._holds += 1
                if self._watchdog is None:
                    self._start_watchdog()
        return got

    def release(self) -> None:
        self._depth -= 1
        self._lock.release()

    def __enter__(self) -> WatchedLock:
        # `acquire` inlined: this is the hot path of every signature.
        self._lock.acquire()
        self._depth += 1
        if self._depth == 1:
            self._holds += 1
            if self._watchdog is None:
                self._start_watchdog()
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        self._lock.release()

    @property
    def watchdog(self) -> threading.Thread | None:
        """The watchdog thread of this process, once the lock has been taken (for the tests)."""
        return self._watchdog

    @contextlib.contextmanager
    def slow(self, seconds: float = SLOW_CALL_GRACE) -> Iterator[None]:
        """Allow the calls inside (with the lock held) `seconds` more."""
        self._grace += seconds
        try:
            yield
        finally:
            self._grace -= seconds

    def _start_watchdog(self) -> None:
        self._watchdog = threading.Thread(target=self._watch, name="hsm-watchdog", daemon=True)
        self._watchdog.start()

    def _after_fork(self) -> None:
        """In a forked child only the forking thread survives: start a watchdog there too."""
        self._watchdog = None

    def _watch(self) -> None:
        # The clock is read here, at each look, rather than at every acquire: a hold is timed
        # from the first look that sees it, at most one `_TICK` after it began.
        seen, since = 0, 0.0
        while True:
            time.sleep(_TICK)
            try:
                limit = hsm_timeout()
                holds, held = self._holds, self._depth > 0
                now = time.monotonic()
                if not held:
                    seen = 0
                    continue
                if holds != seen:
                    seen, since = holds, now
                late = limit > 0 and now - since > limit + self._grace
            except Exception:  # never restarted, so it must outlive any surprise
                continue
            if late:
                line = (f"ceremony: error: the HSM did not answer for {limit:.0f} s (a network "
                        "HSM whose `p11-kit server` stopped responding, or a wedged device) — "
                        "check the HSM, then run the command again (`ceremony resume` "
                        "finishes an interrupted ceremony)\n")
                with contextlib.suppress(OSError):
                    os.write(2, line.encode("utf-8", "replace"))
                os._exit(1)


def hsm_timeout() -> float:
    """Seconds a PKCS#11 call may take ($CEREMONY_HSM_TIMEOUT; 0 waits for ever)."""
    text = os.environ.get(TIMEOUT_VARIABLE, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value >= 0 else DEFAULT_TIMEOUT


LOCK: Final = WatchedLock()
os.register_at_fork(after_in_child=LOCK._after_fork)

RECONCILE_HINT: Final = (
    "check the cable / network HSM, then run `ceremony reconcile` before continuing"
)

# Errors after which the session handle (and every object handle made in it) is dead.
SESSION_LOST: Final[tuple[type[p11e.PKCS11Error], ...]] = (
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
)
# Errors after which the device itself may be gone (USB pulled, network HSM unreachable).
DEVICE_LOST: Final[tuple[type[p11e.PKCS11Error], ...]] = (
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.TokenNotPresent,
    p11e.TokenNotRecognised,
)
CONNECTION_LOST: Final = SESSION_LOST + DEVICE_LOST

PKCS11Error = p11e.PKCS11Error


class Pkcs11Library(Protocol):
    """What the console uses of a loaded module (`pkcs11.lib`, or the tests' fault wrapper)."""

    @property
    def so(self) -> str: ...
    @property
    def manufacturer_id(self) -> str: ...
    @property
    def library_description(self) -> str: ...
    @property
    def cryptoki_version(self) -> tuple[int, int]: ...
    @property
    def library_version(self) -> tuple[int, int]: ...
    def get_slots(self, token_present: bool = False) -> list[P11Slot]: ...
    def reinitialize(self) -> None: ...


def is_p11kit_client(lib: Pkcs11Library) -> bool:
    """True for p11-kit's RPC client (the "network HSM" path), judged by file name and info."""
    name = Path(lib.so).name
    return "p11-kit-client" in name or (
        lib.manufacturer_id.strip() == "PKCS#11 Kit" and "client" in name
    )


@dataclass(slots=True)
class _Loaded:
    lib: Pkcs11Library
    address: str | None  # P11_KIT_SERVER_ADDRESS when the module was loaded
    open_handles: int = 0


class Modules:
    """Process-wide registry of loaded modules and of the `Hsm` handles open on each."""

    _loaded: dict[str, _Loaded] = {}  # noqa: RUF012 - process-wide on purpose

    @classmethod
    def load(cls, path: str) -> Pkcs11Library:
        """Load (or reuse) the module at `path`; reload a p11-kit client whose address changed."""
        path = _key(path)
        with LOCK:
            address = os.environ.get("P11_KIT_SERVER_ADDRESS")
            rec = cls._loaded.get(path)
            if rec is not None and rec.address != address and is_p11kit_client(rec.lib):
                if rec.open_handles:
                    raise HsmModuleError(
                        "P11_KIT_SERVER_ADDRESS changed while a session to the old network HSM "
                        "is open",
                        "close the console's HSM sessions first, or restart the console",
                    )
                pkcs11.unload(path)
                del cls._loaded[path]
                rec = None
            if rec is None:
                if not Path(path).exists():
                    raise HsmModuleError(
                        f"PKCS#11 module {path} does not exist",
                        "check the module path in ceremony.toml (or run `ceremony doctor`)",
                    )
                try:
                    lib: Pkcs11Library = pkcs11.lib(path)
                except p11e.PKCS11Error as e:
                    raise HsmModuleError(
                        f"cannot load PKCS#11 module {path}: {_describe(e)}",
                        "check the module path and its configuration (run `ceremony doctor`)",
                    ) from e
                rec = _Loaded(lib, address)
                cls._loaded[path] = rec
            return rec.lib

    @classmethod
    def adopt(cls, path: str, lib: Pkcs11Library) -> None:
        """Account for an injected library object (the tests' fault wrapper) wrapping `path`.

        The real module stays the one `load` returns; handles opened through the wrapper count
        against it, so a rescan never cuts their sessions.
        """
        del lib  # the wrapper delegates to the real module, which is what we track
        cls.load(path)

    @classmethod
    def opened(cls, path: str) -> None:
        with LOCK:
            cls._loaded[_key(path)].open_handles += 1

    @classmethod
    def closed(cls, path: str) -> None:
        with LOCK:
            rec = cls._loaded.get(_key(path))
            if rec is not None and rec.open_handles > 0:
                rec.open_handles -= 1

    @classmethod
    def open_handles(cls, path: str) -> int:
        with LOCK:
            rec = cls._loaded.get(_key(path))
            return rec.open_handles if rec is not None else 0

    @classmethod
    def rescan(cls, path: str, lib: Pkcs11Library, *, allowed_handles: int = 0) -> bool:
        """Finalise and initialise `lib` if at most `allowed_handles` handles use it.

        Returns False (and does nothing) when other handles are open: their sessions would die.
        """
        with LOCK:
            if cls.open_handles(path) > allowed_handles:
                return False
            try:
                lib.reinitialize()
            except p11e.PKCS11Error:
                # C_Finalize on a dead connection fails; C_Initialize is what matters and
                # `reinitialize` leaves the module uninitialised, so try it once more.
                try:
                    reinit = getattr(lib, "initialize", None)
                    if reinit is not None:
                        reinit()
                except p11e.PKCS11Error:
                    return False
            return True


def _key(path: str) -> str:
    # One module file reached by two paths (a symlink) must be loaded once: a second
    # C_Initialize in the same process fails with CKR_CRYPTOKI_ALREADY_INITIALIZED.
    return os.path.realpath(path) if os.path.exists(path) else path


def _describe(e: BaseException) -> str:
    """A pkcs11 exception in words, without echoing arguments that could carry secrets."""
    name = type(e).__name__
    text = str(e).strip()
    # python-pkcs11 messages are its own fixed docstrings (never PINs); keep them short.
    if text and len(text) < 120 and "\n" not in text:
        return f"{name} ({text})"
    return name


def translate(e: p11e.PKCS11Error, doing: str) -> HsmError:
    """One pkcs11 exception as the console error an officer can act on."""
    if isinstance(e, p11e.PinIncorrect | p11e.PinLenRange | p11e.PinInvalid):
        return PinIncorrectError(
            f"the token refused the PIN while {doing}",
            "check the PIN; each wrong try brings the token closer to locking",
        )
    if isinstance(e, p11e.PinLocked):
        return PinLockedError(
            "the token's user PIN is locked",
            "the security officer must unblock the PIN (SO login) before any ceremony",
        )
    if isinstance(e, p11e.PinExpired):
        return PinIncorrectError(
            "the token says the user PIN has expired", "change the PIN with the SO, then re-split"
        )
    if isinstance(e, p11e.MechanismInvalid | p11e.MechanismParamInvalid):
        return MechanismNotSupportedError(
            f"the token does not support the mechanism needed while {doing}",
            "run `ceremony doctor` to see which algorithms this token offers",
        )
    if isinstance(e, CONNECTION_LOST):
        return HsmUnavailableError(
            f"HSM unavailable while {doing} ({type(e).__name__})", RECONCILE_HINT
        )
    if isinstance(e, p11e.UserNotLoggedIn):
        return HsmError(
            f"not logged in to the token while {doing}",
            "unlock the PIN with the officers' quorum first",
        )
    if isinstance(e, p11e.UserAlreadyLoggedIn | p11e.AnotherUserAlreadyLoggedIn):
        return HsmError(
            "the token is already logged in by another session of this process",
            "close the other console handle on this token (login state is per token)",
        )
    if isinstance(e, p11e.SessionReadOnly | p11e.TokenWriteProtected):
        return HsmError(f"the token is read-only while {doing}", "use a writable token")
    if isinstance(e, p11e.DeviceMemory | p11e.HostMemory):
        return HsmError(f"the HSM ran out of memory while {doing}", "free objects or sessions")
    return HsmError(
        f"the HSM refused while {doing}: {_describe(e)}",
        "run `ceremony doctor`; if it persists, check the HSM's own logs",
    )


def token_flag_words(flags: int) -> tuple[str, ...]:
    return tuple(f.name for f in TokenFlag if f.name and flags & f.value)


def mechanism_name(m: int) -> str:
    try:
        return f"CKM_{Mechanism(m).name}"
    except ValueError:
        return f"CKM_0x{m:08X}"


def find_objects(session: P11Session, template: Mapping[Attribute, object]) -> list[P11Object]:
    """All objects matching `template`, the whole search under the lock (objects the token
    cannot describe are left out: see `find_objects_counting`)."""
    return find_objects_counting(session, template)[0]


UNREADABLE: Final = (p11e.AttributeValueInvalid, p11e.AttributeTypeInvalid)
"""What reading an object's class raises when the token holds an object without attributes:
SoftHSM2's file store creates an object's file before writing anything in it, so a process
killed in between (inside C_GenerateKeyPair) leaves one, which every later search returns."""


def find_objects_counting(session: P11Session, template: Mapping[Attribute, object]
                          ) -> tuple[list[P11Object], int]:
    """All objects matching `template` that the token can describe, and how many it cannot.

    We run python-pkcs11's search object ourselves rather than its `get_objects` generator:
    when C_FindObjectsInit fails (device gone) the library leaves the search marked active, and
    its `__del__` later retries C_FindObjectsFinal on the dead device and prints a traceback on
    stderr after our one-line error. Holding the object lets us finalise it here, quietly.

    Objects come in batches of 10, each read as it is made; an object without attributes
    (`UNREADABLE`) ends its batch, so the search is then run again one object at a time,
    counting such objects instead of failing the whole search.
    """
    with LOCK:
        if not isinstance(session, _Session):
            # A wrapped session (the tests' fault injector) searches through its own API.
            return list(session.get_objects(dict(template))), 0
        try:
            return _search(session, template, 10, skip=False)
        except UNREADABLE:
            return _search(session, template, 1, skip=True)


def _search(session: P11Session, template: Mapping[Attribute, object], batch_size: int, *,
            skip: bool) -> tuple[list[P11Object], int]:
    search = _SearchIter(session, template, batch_size)
    try:
        search.__enter__()
    except PKCS11Error:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(PKCS11Error):
            search._finalize()
        raise
    found: list[P11Object] = []
    unreadable = 0
    try:
        for batch in search:
            try:
                found.extend(batch)
            except UNREADABLE:
                if not skip:
                    raise
                unreadable += 1
    finally:
        with contextlib.suppress(PKCS11Error):
            search._finalize()
    return found, unreadable





def key_length_range(info: MechanismInfo) -> tuple[int, int] | None:
    """(min, max) key length a mechanism's C_GetMechanismInfo reports, None if it gives none."""
    if info.min_key_length is None or info.max_key_length is None:
        return None
    return (int(info.min_key_length), int(info.max_key_length))
