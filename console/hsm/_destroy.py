"""DANGER: destroying key pairs on the token. Nothing here can be undone.

A destroyed private key is gone for good: every token signed with it can no longer be matched
to a key the ceremony controls, and no backup exists (keys are generated non-extractable).
Only the `destroy` step of a `destructive`-quorum ceremony may call `destroy_keypair`, after the
lifecycle rules allowed it (archived for at least the destruction wait) and after the intent was
recorded in the ledger. It proves the objects are gone by searching for the CKA_ID again in the
same session and in a fresh one.

`destroy_unaudited` is the one other caller of C_DestroyObject: it removes a key pair that was
generated moments ago and failed its audit, before anything could use or record it. And
`remove_unfinished` removes what a generation interrupted by a crash left half-made: objects
without key material (`HsmObject.unfinished`), which no signature can ever have come from.

This is the only module in the console that calls C_DestroyObject. It works on a
`TokenSession` (never on `Hsm`, which imports it) and must be called with `_pkcs11.LOCK` held.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pkcs11.exceptions as p11e
from pkcs11 import Attribute

from console.errors import HsmError, ObjectNotFoundError
from console.hsm._inventory import describe
from console.hsm._pkcs11 import find_objects, translate
from console.hsm._session import TokenSession
from console.hsm.values import HsmObject

if TYPE_CHECKING:
    from pkcs11 import Object as P11Object
    from pkcs11 import Session as P11Session


def destroy_keypair(token: TokenSession, cka_id: bytes) -> None:
    """DANGER: destroy every object with `cka_id` (the private and the public key).

    Raises: ObjectNotFoundError (nothing has this id), HsmUnavailableError (the outcome is
    unknown: reconcile), HsmError (empty id, not logged in, or objects are still there
    afterwards).
    """
    if not cka_id:
        raise HsmError("refusing to destroy objects with an empty CKA_ID", "name one key")
    token.require_login("destroying a key")

    def destroy(session: P11Session) -> int:
        objects = find_objects(session, {Attribute.ID: cka_id})
        for obj in objects:
            obj.destroy()
        return len(objects)

    count = token.run(f"destroying key {cka_id.hex()}", destroy, mutating=True)
    if count == 0:
        raise ObjectNotFoundError(
            f"no object with CKA_ID {cka_id.hex()} on the token; nothing was destroyed",
            "run `ceremony reconcile` to compare the token with the ledger",
        )
    left = token.run(
        "checking the key is gone", lambda s: len(find_objects(s, {Attribute.ID: cka_id}))
    )
    fresh_left = _count_in_fresh_session(token, cka_id)
    if left or fresh_left:
        raise HsmError(
            f"key {cka_id.hex()} is still on the token after C_DestroyObject",
            "stop the ceremony and inspect the token with `ceremony doctor` / pkcs11-tool",
        )


def destroy_unaudited(pub: P11Object, priv: P11Object) -> bool:
    """DANGER: destroy a just-generated key pair that failed its audit; True if both went.

    Never raises: the caller is already reporting the failed audit, and says in it whether the
    key is gone (a key that could not be destroyed must never be used).
    """
    ok = True
    for obj in (priv, pub):
        try:
            obj.destroy()
        except p11e.PKCS11Error:
            ok = False
    return ok


def remove_unfinished(token: TokenSession, cka_id: bytes, label: str) -> list[HsmObject]:
    """DANGER: remove what an interrupted generation of the pair (`cka_id`, `label`) left.

    Called only when resuming a `generate` step whose intent recorded this CKA_ID and label
    (fresh random bytes: no other pair has them). Removed: the objects with `cka_id` when they
    are not a whole pair (one private and one public key, neither unfinished) — half a pair
    signs nothing the ledger knows — and objects with neither a CKA_ID nor a label that hold no
    key material (`HsmObject.unfinished`: SoftHSM2's defaults, written before the template). A
    whole pair is never touched (the caller audits and adopts it); nor is any object with
    another label, or with key material. Returns what was removed.
    """
    token.require_login("removing an unfinished key")

    def sweep(session: P11Session) -> list[HsmObject]:
        mine = [(obj, describe(obj)) for obj in find_objects(session, {Attribute.ID: cka_id})]
        whole = (sorted(d.object_class for _, d in mine) == ["private key", "public key"]
                 and not any(d.unfinished for _, d in mine))
        victims = [] if whole else [(o, d) for o, d in mine if d.label == label]
        # Every object, filtered here: a template with an empty CKA_ID matches nothing on
        # SoftHSM2, whose leftovers have an empty one.
        for obj in find_objects(session, {}):
            found = describe(obj)
            if found.label == "" and not found.cka_id and found.unfinished:
                victims.append((obj, found))
        for obj, _ in victims:
            obj.destroy()
        return [d for _, d in victims]

    return token.run(f"removing what an interrupted generation of {label} left", sweep,
                     mutating=True)


def _count_in_fresh_session(token: TokenSession, cka_id: bytes) -> int:
    """Search again in a new session: a token could hide a stale object in the old one."""
    session = token.open_probe_session("opening a session to check the key is gone")
    try:
        return len(find_objects(session, {Attribute.ID: cka_id}))
    except p11e.PKCS11Error as e:
        raise translate(e, "checking the key is gone") from e
    finally:
        # A public session: closing it does no C_Logout, so the handle stays logged in.
        with contextlib.suppress(p11e.PKCS11Error):
            session.close()
