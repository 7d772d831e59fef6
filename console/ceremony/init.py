"""`ceremony init`: a new workspace on a token, with the PIN split among the officers.

The token's current user PIN is asked for once; init proves it works, then sets a fresh random
PIN (C_SetPIN) whose only copy is sealed M-of-N to the officers' cards. Nothing is written before
every input has been validated and the current PIN has been proved.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from console.ceremony.officers import read_card_file
from console.ceremony.planner import pin_threshold
from console.clock import wall_clock
from console.config import (
    HsmConfig,
    Officer,
    Quorum,
    QuorumRule,
    WorkspaceConfig,
    load_policy,
    load_workspace_config,
    render_workspace_config,
)
from console.errors import ConsoleError, UsageError, WorkspaceError
from console.quorum.cards import read_card_public
from console.quorum.pin_gate import new_pin, read_sealed_pin, seal_pin
from console.sealing import CEREMONY_TOML, POLICY_TOML, current_record
from console.workspace import CHECKPOINT_FILE, LEDGER_DB, SEALED_PIN, Workspace, open_token

DEFAULT_POLICY = """\
# Keysets and their policy (DESIGN.md section 7). Durations: 90d, 12h, 20m, 45s.
[keysets.api]
issuer = "https://auth.example.com"
alg = "ES256"
cryptoperiod = "90d"
max_token_lifetime = "1h"
clock_skew = "5m"
margin = "1d"
destruction_wait = "30d"

[[keysets.api.consumers]]
name = "edge-gateway"
type = "envoy"
cache_lifetime = "10m"
"""


def parse_quorum(specs: Sequence[str], officers: int) -> Quorum:
    """`routine=2/3` style options; defaults: routine min(2, N)/N, destructive N/N, emergency =
    routine.

    Raises:
        UsageError: malformed or impossible.
    """
    rules: dict[str, QuorumRule] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        m_text, slash, n_text = value.partition("/")
        if not sep or not slash or name not in ("routine", "destructive", "emergency"):
            raise UsageError(f"--quorum {spec!r} is not CLASS=M/N", "e.g. --quorum routine=2/3")
        try:
            m, n = int(m_text), int(n_text)
        except ValueError as e:
            raise UsageError(f"--quorum {spec!r} is not CLASS=M/N", "e.g. routine=2/3") from e
        if n != officers or not 1 <= m <= n:
            raise UsageError(f"--quorum {spec}: need 1 ≤ M ≤ N and N = {officers} officers",
                             f"e.g. {name}={min(2, officers)}/{officers}")
        rules[name] = QuorumRule(m, n)
    routine = rules.get("routine", QuorumRule(min(2, officers), officers))
    return Quorum(routine=routine,
                  destructive=rules.get("destructive", QuorumRule(officers, officers)),
                  emergency=rules.get("emergency", routine))


def init_workspace(
    root: Path, *, org: str, module: str, token_label: str | None, token_serial: str | None,
    officer_cards: Sequence[Path], quorum: Sequence[str], current_pin: bytes, rehearsal: bool,
    policy_file: Path | None, progress: Callable[[str], None],
    now: datetime | None = None, softhsm_conf: str | None = None,
) -> Workspace:
    """Create the workspace at `root` and return it open.

    Raises:
        WorkspaceError: `root` already holds a workspace.
        UsageError, ConfigError, CardError: bad inputs (nothing written).
        PinIncorrectError, HsmError: the token refused (nothing written).
    """
    for name in (CEREMONY_TOML, LEDGER_DB, SEALED_PIN):
        if (root / name).exists():
            raise WorkspaceError(f"{root} already holds a workspace ({name} exists)",
                                 "choose an empty folder")
    if not officer_cards:
        raise UsageError("init needs the officers' cards", "add --officer-card FILE (repeat)")
    officers = [read_card_public(read_card_file(p)) for p in officer_cards]
    if len({o.name for o in officers}) != len(officers):
        raise UsageError("two cards belong to the same officer", "give each officer's card once")
    config = WorkspaceConfig(
        org=org, id=str(uuid.uuid4()), rehearsal=rehearsal,
        hsm=HsmConfig(module=module, token_label=token_label, token_serial=token_serial,
                      softhsm_conf=softhsm_conf),
        quorum=parse_quorum(quorum, len(officers)),
        officers=tuple(Officer(o.name, o.ed25519_public, o.x25519_public) for o in officers),
    )
    config_text = render_workspace_config(config)
    policy_text = policy_file.read_text(encoding="utf-8") if policy_file else DEFAULT_POLICY
    root.mkdir(parents=True, exist_ok=True)
    staging = root / ".init"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        (staging / CEREMONY_TOML).write_text(config_text, encoding="utf-8")
        (staging / POLICY_TOML).write_text(policy_text, encoding="utf-8")
        load_workspace_config(staging / CEREMONY_TOML)
        policy = load_policy(staging / POLICY_TOML)
    except ConsoleError:
        shutil.rmtree(staging)
        raise
    now = now or wall_clock()
    threshold = pin_threshold(config.quorum, len(officers))
    fresh = new_pin()
    sealed = seal_pin(fresh, [(o.name, o.x25519_key()) for o in officers], threshold, now=now,
                      token=token_label)
    (staging / SEALED_PIN).write_bytes(sealed)

    from console.ledger import Ledger

    # Prove the current PIN before anything leaves the staging folder.
    hsm = open_token(root, config)
    created: list[Path] = []
    pin_changed = False
    try:
        progress("logging in to the token with its current PIN")
        hsm.login(current_pin)
        for name in (CEREMONY_TOML, POLICY_TOML, SEALED_PIN):
            os.replace(staging / name, root / name)
            created.append(root / name)
        record = current_record(root, config, policy)
        created += [root / LEDGER_DB, root / CHECKPOINT_FILE]
        ledger = Ledger.create(root / LEDGER_DB, origin=config.origin,
                               checkpoint_file=root / CHECKPOINT_FILE)
        ledger.append_many(
            [("workspace.created", {"origin": config.origin, "org": org,
                                    "rehearsal": rehearsal}, now, "console", None),
             ("config.recorded", dict(record.data), now, "console", None)]
            + [("officer.enrolled", o.enrollment_data(), now, "console", None)
               for o in officers]
        )
        progress("setting a fresh random PIN, sealed "
                 f"{threshold} of {len(officers)} to the officers' cards")
        hsm.set_pin(current_pin, fresh)
        pin_changed = True
        ledger.append("pin.resplit", {**read_sealed_pin(sealed).ledger_data(),
                                      "sha256": hashlib.sha256(sealed).hexdigest()},
                      time=now, actor="console")
    except BaseException:
        if not pin_changed:  # the token is as it was: leave no half-made workspace behind
            for path in created:
                for candidate in (path, path.with_name(path.name + "-wal"),
                                  path.with_name(path.name + "-shm")):
                    candidate.unlink(missing_ok=True)
        raise
    finally:
        hsm.close()
        shutil.rmtree(staging, ignore_errors=True)
    (root / "exports").mkdir(exist_ok=True)
    ledger.close()
    return Workspace.open(root)
