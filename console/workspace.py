"""Opening a workspace: the folder holding ceremony.toml, policy.toml, the ledger and exports.

`Workspace.open` finds the folder (argument, `CEREMONY_WORKSPACE`, or `.`), parses both TOML
files strictly, opens the ledger (which checks its checkpoint chain, the entries since the last
checkpoint, the `.checkpoint` guard and any checkpoint an officer brings), and compares the files
with the configuration the ledger records (`console.sealing`). The HSM is opened only when a
command needs it, and never while the configuration differs from the record. Nothing here
prints: the faces (CLI, TUI) present what it returns.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from console.clock import wall_clock
from console.config import Policy, WorkspaceConfig, load_policy, load_workspace_config
from console.errors import (
    ConfigDriftError,
    HsmError,
    LedgerBusyError,
    UsageError,
    WorkspaceError,
)
from console.files import open_lock_file
from console.lifecycle import effective_now
from console.sealing import CEREMONY_TOML, POLICY_TOML, ConfigRecord, Drift, drift, file_sha256

if TYPE_CHECKING:
    from console.hsm import Hsm
    from console.ledger import Ledger, Trust

LEDGER_DB = "ledger.sqlite"
CHECKPOINT_FILE = ".checkpoint"
SEALED_PIN = "pin.sealed"
LOCK_FILE = ".lock"
EXPECT_CHECKPOINT_VARIABLE = "CEREMONY_EXPECT_CHECKPOINT"


def locate(path: str | os.PathLike[str] | None) -> Path:
    """The workspace folder the user means: the argument, CEREMONY_WORKSPACE, or `.`."""
    chosen = path if path is not None else os.environ.get("CEREMONY_WORKSPACE") or "."
    if "\x00" in os.fspath(chosen):
        raise UsageError("the workspace path holds a NUL character", "give a plain folder path")
    path = Path(chosen).expanduser().resolve()
    if len(os.fsencode(path)) >= 4096 or any(len(os.fsencode(p)) > 255 for p in path.parts):
        raise UsageError("the workspace path is longer than file systems allow",
                         "give a shorter folder path")
    return path


def read_expected_checkpoint(path: str | os.PathLike[str] | None) -> str | None:
    """The checkpoint note an officer kept: `--expect-checkpoint FILE`, else the file named by
    `CEREMONY_EXPECT_CHECKPOINT`, else None.

    Raises:
        UsageError: the file cannot be read.
    """
    chosen = path if path is not None else os.environ.get(EXPECT_CHECKPOINT_VARIABLE) or None
    if chosen is None:
        return None
    try:
        return Path(chosen).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"cannot read the expected checkpoint {os.fspath(chosen)!r}",
                         "give the checkpoint file an officer kept") from e


@dataclass
class Workspace:
    """An opened workspace. Holds the ledger open; the HSM is opened on demand."""

    root: Path
    config: WorkspaceConfig
    policy: Policy
    ledger: Ledger
    drift: tuple[Drift, ...] = ()
    _hsm: Hsm | None = field(default=None, repr=False)

    # --- opening -----------------------------------------------------------------------------

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
        ledger = Ledger.open(root / LEDGER_DB, checkpoint_file=root / CHECKPOINT_FILE,
                             expect_checkpoint=expect_checkpoint)
        ws = cls(root=root, config=config, policy=policy, ledger=ledger)
        ws.drift = ws._find_drift()
        return ws

    def _find_drift(self) -> tuple[Drift, ...]:
        trust = self.trust
        found: list[Drift] = []
        if trust.rehearsal is not None and trust.rehearsal != self.config.rehearsal:
            found.append(Drift(
                CEREMONY_TOML,
                f"rehearsal = {str(self.config.rehearsal).lower()}, but the ledger fixed "
                f"rehearsal = {str(trust.rehearsal).lower()} at genesis (it never changes)"))
        if trust.config is None:
            found.append(Drift("the ledger", "records no configuration (config.recorded)"))
        else:
            found += drift(ConfigRecord(trust.config), self.root, self.config, self.policy)
        return tuple(found)

    def close(self) -> None:
        if self._hsm is not None:
            self._hsm.close()
            self._hsm = None
        self.ledger.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- trust -------------------------------------------------------------------------------

    @property
    def trust(self) -> Trust:
        return self.ledger.trust

    @property
    def recorded_config(self) -> ConfigRecord | None:
        config = self.trust.config
        return None if config is None else ConfigRecord(config)

    def require_sealed(self) -> None:
        """Refuse when the files differ from the configuration the ledger records.

        Raises:
            ConfigDriftError: naming the first difference (`status` lists them all).
        """
        if self.drift:
            first = self.drift[0]
            more = f" (and {len(self.drift) - 1} more)" if len(self.drift) > 1 else ""
            raise ConfigDriftError(
                f"{first.what} differs from the configuration the ledger records: "
                f"{first.detail}{more}",
                "nothing that touches the HSM or the ledger runs until a `config-change` "
                "ceremony records it with the destructive quorum (`ceremony plan "
                "config-change`); `ceremony status` lists every difference",
            )

    # --- paths -------------------------------------------------------------------------------

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
        """Fixed by the ledger's first entry; a ceremony.toml that says otherwise is drift."""
        fixed = self.trust.rehearsal
        return self.config.rehearsal if fixed is None else fixed

    def sealed_pin_sha256(self) -> str:
        """SHA-256 of `pin.sealed` as it is now (WorkspaceError when it is missing)."""
        if not self.sealed_pin_path.is_file():
            raise WorkspaceError(f"{self.sealed_pin_path} is missing",
                                 "restore pin.sealed from your backup")
        return file_sha256(self.sealed_pin_path)

    def demo_card(self, officer: str) -> tuple[Path, Path] | None:
        """The throwaway card and passphrase files of a rehearsal demo, when they exist."""
        if not self.rehearsal:
            return None
        card = self.root / "demo-cards" / f"{officer}.card"
        secret = self.root / "demo-cards" / f"{officer}.pass"
        return (card, secret) if card.is_file() and secret.is_file() else None

    # --- time --------------------------------------------------------------------------------

    def now(self, requested: datetime | None = None) -> datetime:
        """The time a command acts at: --now in rehearsal, else max(wall clock, last entry)."""
        return effective_now(
            requested=requested,
            rehearsal=self.rehearsal,
            last_recorded=self.ledger.last_time(),
            wall=wall_clock(),
        )

    # --- HSM ---------------------------------------------------------------------------------

    def module_path(self) -> str:
        return str(self.config.hsm.module_path())

    def prepare_module_environment(self) -> None:
        """Point SoftHSM2 at the workspace's own token directory (demo and rehearsal tokens)."""
        prepare_module_environment(self.root, self.config)

    def hsm(self) -> Hsm:
        """The workspace's token, opened on first use.

        Raises:
            ConfigDriftError: the configuration differs from the record (no module is loaded).
            HsmError: the module or the token cannot be opened.
        """
        if self._hsm is None:
            self.require_sealed()
            recorded = self.recorded_config
            path = self.module_path()
            if recorded is not None and file_sha256(Path(path)) != recorded.module_sha256:
                raise ConfigDriftError(
                    f"the PKCS#11 module {path} changed since the configuration was recorded",
                    "it is not loaded; record it with a `config-change` ceremony if the change "
                    "is expected")
            self._hsm = open_token(self.root, self.config)
        return self._hsm

    def close_hsm(self) -> None:
        """Log out and close the token (the next `hsm()` opens it again)."""
        if self._hsm is not None:
            self._hsm.close()
            self._hsm = None

    # --- exclusive operations ----------------------------------------------------------------

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the workspace lock for a whole ceremony command (plan, approve, execute).

        The ledger serialises single writes; this lock keeps two consoles from interleaving
        the steps of one ceremony.
        """
        # Not "a+": with O_APPEND, Linux's pwrite appends (the file grew by a line a command).
        fd = open_lock_file(self.root / LOCK_FILE, 0o644, WorkspaceError)
        handle = os.fdopen(fd, "r+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                handle.seek(0)
                holder = handle.read(64).split("\n", 1)[0].strip() or "another process"
                raise LedgerBusyError(
                    f"the workspace is busy: a ceremony command is running (pid {holder})",
                    "wait for it to finish, then try again",
                ) from e
            # The pid only names the holder to a second console: a disk that refuses it is no
            # reason to stop (what the command writes next reports the disk, by file name).
            # Fixed width, overwritten in place: ftruncate would cost a metadata sync.
            with suppress(OSError):
                os.pwrite(handle.fileno(), f"{os.getpid():<20}\n".encode(), 0)
            yield
        finally:
            handle.close()


def prepare_module_environment(root: Path, config: WorkspaceConfig) -> None:
    """Point SoftHSM2 at a workspace's own token directory (demo and rehearsal tokens).

    SoftHSM2 reads SOFTHSM2_CONF once per process, when the module is loaded, so it must be set
    before the first load; a process that already loaded another configuration refuses.
    """
    conf = config.hsm.softhsm_conf
    if not conf:
        return
    wanted = str((root / conf).resolve())
    _require_token_folder(Path(wanted))
    current = os.environ.get("SOFTHSM2_CONF")
    if current and current != wanted and _module_loaded():
        raise HsmError(
            "this process already loaded SoftHSM2 with another configuration",
            "run the command in a new process",
        )
    os.environ["SOFTHSM2_CONF"] = wanted


def _require_token_folder(conf: Path) -> None:
    """The workspace's SoftHSM2 configuration and the token folder it names exist (SoftHSM2
    itself only says "GeneralError" when they do not)."""
    hint = "restore the workspace's softhsm/ folder from your backup"
    try:
        text = conf.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkspaceError(f"{conf} is missing: the token's files are gone", hint) from None
    except (OSError, UnicodeDecodeError) as e:
        raise WorkspaceError(f"cannot read {conf}: {e}", hint) from e
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "directories.tokendir":
            tokens = Path(value.strip())
            if not tokens.is_dir():
                raise WorkspaceError(f"the SoftHSM2 token folder {tokens} is missing", hint)


def open_token(root: Path, config: WorkspaceConfig) -> Hsm:
    """Load the configured module and open the configured token (no login).

    `Workspace.hsm` calls this only once the configuration matches the ledger's record; `init`
    calls it before there is a ledger.
    """
    from console.hsm import Hsm

    prepare_module_environment(root, config)
    hsm_config = config.hsm
    return Hsm.open(str(hsm_config.module_path()), token_label=hsm_config.token_label or None,
                    token_serial=hsm_config.token_serial or None)


def _module_loaded() -> bool:
    import sys

    return "pkcs11" in sys.modules
