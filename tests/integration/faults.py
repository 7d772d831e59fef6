"""A fault-injecting wrapper around the real python-pkcs11 objects (tests only).

SoftHSM2 cannot lock a PIN, lose its device or invalidate a session on demand; this wrapper
can, while every call it lets through reaches the real SoftHSM2 token. It counts calls by their
PKCS#11 name, so a test can assert e.g. "0 C_Login calls".

    lib = FaultyLib.load(token.module)
    lib.set_token_flags(TokenFlag.USER_PIN_FINAL_TRY)          # pretend one try is left
    lib.inject("C_Sign", pkcs11.exceptions.SessionHandleInvalid, nth=1)
    lib.unplug_at("C_Sign", nth=3)                             # device gone for good
    hsm = Hsm.open(token.module, token_label=token.label, _lib=lib)
    ...
    assert lib.calls["C_Login"] == 0

Semantics follow the PKCS#11 specification: after a session- or device-level error, the
session it hit is dead (every later call on it, or on an object found in it, raises
SessionHandleInvalid), and while the device is unplugged no slot shows a token and every call
raises DeviceRemoved.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pkcs11.exceptions as p11e
from pkcs11 import TokenFlag

from console.hsm._pkcs11 import CONNECTION_LOST, Modules


@dataclass
class Fault:
    function: str
    error: type[p11e.PKCS11Error]
    nth: int = 1  # the first matching call (counted from arming) that fails
    times: int = 1  # how many calls fail from then on; 0 means every later call
    unplug: bool = False  # the device disappears when this fault fires
    seen: int = 0
    fired: int = 0


class FaultyLib:
    """Wraps a loaded `pkcs11.lib`; see the module docstring."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self.calls: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.flags_set = 0
        self.flags_clear = 0
        self.present = True

    @classmethod
    def load(cls, path: str) -> FaultyLib:
        return cls(Modules.load(path))

    # --- arming -------------------------------------------------------------------------------

    def inject(
        self, function: str, error: type[p11e.PKCS11Error], *, nth: int = 1, times: int = 1
    ) -> Fault:
        fault = Fault(function, error, nth, times)
        self.faults.append(fault)
        return fault

    def unplug_at(self, function: str, *, nth: int = 1) -> Fault:
        fault = Fault(function, p11e.DeviceRemoved, nth, 1, unplug=True)
        self.faults.append(fault)
        return fault

    def set_token_flags(self, set_: int = 0, clear: int = 0) -> None:
        self.flags_set, self.flags_clear = int(set_), int(clear)

    def unplug(self) -> None:
        self.present = False

    def plug(self) -> None:
        self.present = True

    # --- the checkpoint every wrapped call passes ---------------------------------------------

    def check(self, function: str, session: FaultySession | None = None) -> None:
        self.calls[function] += 1
        if not self.present:
            raise p11e.DeviceRemoved()
        if session is not None and session.dead is not None:
            raise p11e.SessionHandleInvalid()
        for fault in self.faults:
            if fault.function != function:
                continue
            fault.seen += 1
            if fault.seen >= fault.nth and (fault.times == 0 or fault.fired < fault.times):
                fault.fired += 1
                if fault.unplug:
                    self.present = False
                if session is not None and issubclass(fault.error, CONNECTION_LOST):
                    session.dead = fault.error
                raise fault.error()

    # --- the library surface the console uses ----------------------------------------------------

    @property
    def so(self) -> str:
        return str(self._lib.so)

    @property
    def manufacturer_id(self) -> str:
        return str(self._lib.manufacturer_id)

    @property
    def library_description(self) -> str:
        return str(self._lib.library_description)

    @property
    def cryptoki_version(self) -> tuple[int, int]:
        major, minor = self._lib.cryptoki_version
        return (int(major), int(minor))

    @property
    def library_version(self) -> tuple[int, int]:
        major, minor = self._lib.library_version
        return (int(major), int(minor))

    def get_slots(self, token_present: bool = False) -> list[FaultySlot]:
        self.check("C_GetSlotList")
        return [FaultySlot(self, s) for s in self._lib.get_slots(token_present=token_present)]

    def reinitialize(self) -> None:
        self.calls["C_Finalize"] += 1
        self.calls["C_Initialize"] += 1
        if not self.present:
            raise p11e.DeviceRemoved()
        self._lib.reinitialize()


class FaultySlot:
    def __init__(self, lib: FaultyLib, slot: Any) -> None:
        self._fl, self._slot = lib, slot

    slot_id = property(lambda self: self._slot.slot_id)
    flags = property(lambda self: self._slot.flags)
    slot_description = property(lambda self: self._slot.slot_description)
    manufacturer_id = property(lambda self: self._slot.manufacturer_id)

    def get_token(self) -> FaultyToken:
        if not self._fl.present:
            self._fl.calls["C_GetTokenInfo"] += 1
            raise p11e.TokenNotPresent()
        self._fl.check("C_GetTokenInfo")
        return FaultyToken(self._fl, self, self._slot.get_token())

    def get_mechanisms(self) -> set[Any]:
        self._fl.check("C_GetMechanismList")
        return set(self._slot.get_mechanisms())

    def get_mechanism_info(self, mechanism: Any) -> Any:
        self._fl.check("C_GetMechanismInfo")
        return self._slot.get_mechanism_info(mechanism)


class FaultyToken:
    def __init__(self, lib: FaultyLib, slot: FaultySlot, token: Any) -> None:
        self._fl, self.slot, self._token = lib, slot, token

    label = property(lambda self: self._token.label)
    serial = property(lambda self: self._token.serial)
    manufacturer_id = property(lambda self: self._token.manufacturer_id)
    model = property(lambda self: self._token.model)

    @property
    def flags(self) -> TokenFlag:
        return TokenFlag((int(self._token.flags) | self._fl.flags_set) & ~self._fl.flags_clear)

    def open(self, rw: bool = False, user_pin: str | None = None) -> FaultySession:
        self._fl.check("C_OpenSession")
        if user_pin is not None:
            # Counted before the real call: a refused login still was a C_Login.
            self._fl.check("C_Login")
        return FaultySession(self._fl, self._token.open(rw=rw, user_pin=user_pin), user_pin)


class FaultySession:
    def __init__(self, lib: FaultyLib, session: Any, user_pin: str | None) -> None:
        self._fl, self._session = lib, session
        self._logged_in = user_pin is not None
        self.dead: type[p11e.PKCS11Error] | None = None

    def close(self) -> None:
        if self._logged_in:
            self._fl.calls["C_Logout"] += 1
        self._fl.calls["C_CloseSession"] += 1
        # Release the real session even when this one "died", so the real token is not left
        # logged in; then report what a dead session reports.
        self._session.close()
        if self.dead is not None or not self._fl.present:
            raise p11e.SessionHandleInvalid()

    def get_objects(self, attrs: Any = None) -> list[FaultyObject]:
        self._fl.check("C_FindObjects", self)
        return [FaultyObject(self, o) for o in self._session.get_objects(attrs)]

    def generate_keypair(self, *args: Any, **kwargs: Any) -> tuple[FaultyObject, FaultyObject]:
        self._fl.check("C_GenerateKeyPair", self)
        pub, priv = self._session.generate_keypair(*args, **kwargs)
        return FaultyObject(self, pub), FaultyObject(self, priv)

    def generate_random(self, nbits: int) -> bytes:
        self._fl.check("C_GenerateRandom", self)
        return bytes(self._session.generate_random(nbits))

    def set_pin(self, old: str, new: str) -> None:
        self._fl.check("C_SetPIN", self)
        self._session.set_pin(old, new)


class FaultyObject:
    def __init__(self, session: FaultySession, obj: Any) -> None:
        self._s, self._obj = session, obj

    def __getitem__(self, key: Any) -> Any:
        self._s._fl.check("C_GetAttributeValue", self._s)
        return self._obj[key]

    def get_attributes(self, keys: list[Any]) -> dict[Any, Any]:
        self._s._fl.check("C_GetAttributeValue", self._s)
        return dict(self._obj.get_attributes(keys))

    def sign(self, data: bytes, **kwargs: Any) -> bytes:
        self._s._fl.check("C_Sign", self._s)
        return bytes(self._obj.sign(data, **kwargs))

    def destroy(self) -> None:
        self._s._fl.check("C_DestroyObject", self._s)
        self._obj.destroy()


__all__ = ["Fault", "FaultyLib"]
