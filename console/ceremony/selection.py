"""Which keysets a plan covers: those named, or those the script has work for now (genesis:
keysets without keys; quarterly rotation: keysets due, or nearly, or with a retired key to
unpublish or a successor missing; others: keysets with keys).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from console.ceremony.script import BUNDLE_CHANGES, Script
from console.config import Policy
from console.errors import PlanError
from console.lifecycle import KeysetState, plan_rotation, rotation_due

KEY_STEPS = frozenset({"generate", "self_test", "destroy", *BUNDLE_CHANGES})
"""Script steps that act on a keyset's keys."""
DUE_LEAD = timedelta(days=14)
"""A keyset is due for a quarterly rotation this long before its cryptoperiod ends."""


def select_keysets(script: Script, policy: Policy, keysets: Mapping[str, KeysetState],
                   requested: Sequence[str], now: datetime) -> list[str]:
    """The keysets a plan of `script` covers: those named (each must be in the policy), else
    the ones the script has work for now.

    Raises:
        PlanError: a script without key steps given keysets, or nothing to do.
        ConfigError: a named keyset is not in the policy.
    """
    for name in requested:
        policy.keyset(name)  # raises with the list of keysets
    steps = {s.action for s in script.steps}
    if not steps & (KEY_STEPS | {"export_bundle"}):
        if requested:
            raise PlanError(f"{script.name} takes no --keyset", "leave --keyset out")
        return []
    if requested:
        return list(dict.fromkeys(requested))
    names = list(policy.names)
    if script.name == "genesis":
        chosen = [n for n in names if not has_token_keys(keysets.get(n))]
        if not chosen:
            raise PlanError("every keyset already has keys: genesis ran before",
                            "run quarterly-rotation, or add a keyset to policy.toml")
        return chosen
    if script.name == "quarterly-rotation":
        chosen = [n for n in names if rotation_has_work(policy, keysets, n, now)]
        if not chosen:
            raise PlanError("no keyset is due for rotation",
                            "see `ceremony status`; name one with --keyset to rotate early")
        return chosen
    return [n for n in names if has_token_keys(keysets.get(n))]


def rotation_has_work(policy: Policy, keysets: Mapping[str, KeysetState], name: str,
                      now: datetime) -> bool:
    """Due (or nearly), or a retired key may be unpublished, or a successor is missing."""
    state = keysets.get(name)
    if state is None or not has_token_keys(state):
        return False
    rules = policy.keyset(name)
    due = rotation_due(state, rules, now)
    if due.next_due is None or due.overdue or now >= due.next_due - DUE_LEAD:
        return True
    rotation = plan_rotation(state, rules, now)
    return any(a.action in ("unpublish", "generate", "publish") for a in rotation.actions)


def has_token_keys(state: KeysetState | None) -> bool:
    return state is not None and bool(state.token_keys)


__all__ = ["DUE_LEAD", "KEY_STEPS", "has_token_keys", "rotation_has_work", "select_keysets"]
