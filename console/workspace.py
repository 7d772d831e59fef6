"""Opening a workspace: the folder holding ceremony.toml, policy.toml, the ledger and exports.

`Workspace.open` finds the folder (argument, `CEREMONY_WORKSPACE`, or `.`), parses both TOML
files strictly, opens the ledger behind its rollback guard and replays it. The HSM is opened
only when a command needs it. Nothing here prints: the faces (CLI, TUI) present what it returns.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from console.clock import wall_clock
from console.config import Policy, WorkspaceConfig, load_policy, load_workspace_config
from console.errors import HsmError, LedgerBusyError, UsageError, WorkspaceError
from console.lifecycle import effective_now

CEREMONY_TOML = "ceremony.toml"
POLICY_TOML = "policy.toml"
LEDGER_DB = "ledger.sqlite"
CHECKPOINT_FILE = ".checkpoint"
SEALED_PIN = "pin.sealed"
LOCK_FILE = ".lock"

def locate(path: str | os.PathLike[str] | None) -> Path:
    """The workspace folder the user means: the argument, CEREMONY_WORKSPACE, or `.`."""
    chosen = path if path is not None else os.environ.get("CEREMONY_WORKSPACE") or "."
    if "\x00" in os.fspath(chosen):
        raise UsageError("the workspace path holds a NUL character", "give a plain folder path")
    return Path(chosen).expanduser().resolve()


@dataclass
class Workspace:
    """An opened workspace. Holds the ledger open; the HSM is opened on demand."""

    root: Path
    config: WorkspaceConfig
    policy: Policy
    ledger: Any  # console.ledger.Ledger (typed loosely to keep this module import-light)
    _hsm: Any = field(default=None, repr=False)

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *,
             expect_checkpoint: str | None = None) -> Workspace:
        """Open the workspace at `path`.

        Raises:
            WorkspaceError: no workspace there.
            ConfigError: a TOML file is malformed.
            RollbackError, LedgerTamperedError: the ledger does not check out.
        """
        from console.ledger import Ledger

        root = locate(path)
        if not (root / CEREMONY_TOML).is_file():
            raise WorkspaceError(
                f"no workspace in {root} (no {CEREMONY_TOML})",
                "run `ceremony demo` for a rehearsal workspace, or `ceremony init` to create one",
            )
        config = load_workspace_config(root / CEREMONY_TOML)
        policy = load_policy(root / POLICY_TOML)
        if not (root / LEDGER_DB).is_file():
            raise WorkspaceError(
                f"the workspace in {root} has no ledger ({LEDGER_DB})",
                "restore it from your backup; a ledger is never recreated silently",
            )
        ledger = Ledger.open(
            root / LEDGER_DB,
            checkpoint_file=root / CHECKPOINT_FILE,
            expect_checkpoint=expect_checkpoint,
        )
        return cls(root=root, config=config, policy=policy, ledger=ledger)

    def close(self) -> None:
        if self._hsm is not None:
            self._hsm.close()
            self._hsm = None
        self.ledger.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- paths -----------------------------------------------------------------------------

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def transcripts_dir(self) -> Path:
        return self.root / "transcripts"

    @property
    def sealed_pin_path(self) -> Path:
        return self.root / SEALED_PIN

    @property
    def rehearsal(self) -> bool:
        return bool(self.config.rehearsal)

    def demo_card(self, officer: str) -> tuple[Path, Path] | None:
        """The throwaway card and passphrase files of a rehearsal demo, when they exist."""
        if not self.rehearsal:
            return None
        card = self.root / "demo-cards" / f"{officer}.card"
        secret = self.root / "demo-cards" / f"{officer}.pass"
        return (card, secret) if card.is_file() and secret.is_file() else None

    # --- time ------------------------------------------------------------------------------

    def now(self, requested: datetime | None = None) -> datetime:
        """The time a command acts at: --now in rehearsal, else max(wall clock, last entry)."""
        return effective_now(
            requested=requested,
            rehearsal=self.rehearsal,
            last_recorded=self.ledger.last_time(),
            wall=wall_clock(),
        )

    # --- HSM -------------------------------------------------------------------------------

    def module_path(self) -> str:
        return str(self.config.hsm.module_path())

    def prepare_module_environment(self) -> None:
        """Point SoftHSM2 at the workspace's own token directory (demo and rehearsal tokens).

        SoftHSM2 reads SOFTHSM2_CONF once per process, when the module is loaded, so it must be
        set before the first load; a process that already loaded another configuration refuses.
        """
        conf = self.config.hsm.softhsm_conf
        if not conf:
            return
        wanted = str((self.root / conf).resolve())
        current = os.environ.get("SOFTHSM2_CONF")
        if current and current != wanted and _module_loaded():
            raise HsmError(
                "this process already loaded SoftHSM2 with another configuration",
                "run the command in a new process",
            )
        os.environ["SOFTHSM2_CONF"] = wanted

    def hsm(self) -> Any:
        """The workspace's token, opened on first use (console.hsm.Hsm)."""
        if self._hsm is None:
            from console.hsm import Hsm

            self.prepare_module_environment()
            hsm_config = self.config.hsm
            self._hsm = Hsm.open(
                self.module_path(),
                token_label=hsm_config.token_label or None,
                token_serial=hsm_config.token_serial or None,
            )
        return self._hsm

    # --- exclusive operations --------------------------------------------------------------

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the workspace lock for a whole ceremony command (plan, approve, execute).

        The ledger serialises single writes; this lock keeps two consoles from interleaving
        the steps of one ceremony.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / LOCK_FILE, "a+")  # noqa: SIM115 - held for the block
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise LedgerBusyError(
                    f"the workspace is busy: a ceremony command is running (pid {holder})",
                    "wait for it to finish, then try again",
                ) from e
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.close()


def _module_loaded() -> bool:
    import sys

    return "pkcs11" in sys.modules
