"""The one exception hierarchy of the console.

Every error a user can cause or meet is a `ConsoleError`: a one-line message saying what is
wrong and a hint saying what to do. Foreign exceptions (pkcs11, sqlite3, jwcrypto, tomllib,
cryptography) are wrapped once, at the boundary of the module that calls the foreign library,
with `raise ... from e`. The CLI maps the classes to exit codes in one place (`cli.exit_code_for`).

Messages never contain a PIN, a passphrase, a share or a private key: for secrets, every unlock
failure gets the same message so that the error is no oracle.
"""

from __future__ import annotations

from datetime import datetime

DISK_HINT = ("free space on (or repair) the disk, then run the command again — `ceremony resume` "
             "if a ceremony was interrupted")
"""What to do when the disk refused a write (ENOSPC, EIO, a read-only remount): the one hint
every wrapped OSError and SQLite disk error gives."""


def _inert(text: str) -> str:
    """Escape control characters so that a message can never drive a terminal."""
    if text.isascii() and text.isprintable():
        return text  # the common case, checked in C: nothing to escape (transcripts ask 10⁴×)
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\t" or (code >= 0x20 and code != 0x7F and not 0x80 <= code < 0xA0):
            if ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f":
                out.append(f"\\u{code:04x}")
            else:
                out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


class ConsoleError(Exception):
    """Base of every error the console reports to a user.

    `message` says what is wrong, `hint` says what to do. Both are plain text.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def user_message(self) -> str:
        """The one line shown to the user (CLI stderr, TUI error dialog)."""
        text = _inert(self.message)
        if self.hint:
            text = f"{text} — {_inert(self.hint)}"
        return text

    def __str__(self) -> str:
        return self.user_message()


# --- usage and configuration -------------------------------------------------------------


class UsageError(ConsoleError):
    """The command line itself is wrong (exit code 2)."""


class ConfigError(ConsoleError):
    """ceremony.toml or policy.toml is malformed or holds an impossible value."""


class WorkspaceError(ConsoleError):
    """No workspace here, or the workspace is incomplete."""


class ConfigDriftError(ConfigError):
    """The files differ from the configuration the ledger records (a config-change is due)."""


class RehearsalOnlyError(ConsoleError):
    """An option that only a rehearsal workspace accepts (e.g. --now) was used in production."""


class ClockError(ConsoleError):
    """A time is malformed, naive, or earlier than the last recorded time."""


# --- algorithms ----------------------------------------------------------------------------


class UnknownAlgorithmError(ConsoleError):
    """A JWS `alg` outside the vocabulary of `console.jose`; `alg` is the value refused (text)."""

    def __init__(self, message: str, hint: str = "", *, alg: str = "") -> None:
        super().__init__(message, hint)
        self.alg = alg


# --- the terminal (console.terminal) ---------------------------------------------------------


class NoTerminalError(UsageError):
    """Something must be typed (a secret, a confirmation) or shown (the TUI), and there is no
    terminal: the hint names the option to use instead (exit code 2)."""


class TerminalInputError(ConsoleError):
    """What was typed on the terminal cannot be used: input ended (Ctrl-D) or the terminal went
    away before Enter, or the line is too long or not text in the locale's encoding."""


class ConfirmationError(ConsoleError):
    """What was typed to confirm does not match what was shown."""


# --- HSM -----------------------------------------------------------------------------------


class HsmError(ConsoleError):
    """A PKCS#11 operation failed."""


class HsmModuleError(HsmError):
    """The PKCS#11 module file cannot be loaded."""


class TokenNotFoundError(HsmError):
    """No token (or more than one) matches the label or serial asked for."""


class HsmUnavailableError(HsmError):
    """The device was removed, the network HSM went away, or the session died."""


class PinIncorrectError(HsmError):
    """The token refused the PIN."""


class PinLockedError(HsmError):
    """The PIN is locked, or on its final try: the console refuses to try it."""


class MechanismNotSupportedError(HsmError):
    """The token does not offer a mechanism the operation needs."""


class KeyAuditError(HsmError):
    """A generated key failed its attribute audit or self-test and must not be used."""


class ObjectExistsError(HsmError):
    """A label or CKA_ID asked for is already on the token."""


class ObjectNotFoundError(HsmError):
    """A key that the ledger knows is not on the token."""


# --- ledger --------------------------------------------------------------------------------


class LedgerError(ConsoleError):
    """The ledger cannot be read or written."""


class LedgerBusyError(LedgerError):
    """Another process holds the ledger's write lock."""


class LedgerTamperedError(LedgerError):
    """The ledger or an audit pack does not verify: an entry, the tree or a checkpoint is wrong."""


class RollbackError(LedgerError):
    """The ledger is not an extension of the last checkpoint recorded outside it."""


class EntryRejectedError(LedgerError):
    """An entry cannot be stored: float, NaN, lone surrogate, too deep or too large."""


# --- quorum --------------------------------------------------------------------------------


class QuorumError(ConsoleError):
    """Not enough distinct, valid approvals (have/need are public)."""

    def __init__(self, message: str, hint: str = "", *, have: int = 0, need: int = 0) -> None:
        super().__init__(message, hint)
        self.have = have
        self.need = need


class CardError(ConsoleError):
    """An officer card cannot be read or unlocked (one message for every unlock failure)."""


class WeakPassphraseError(CardError):
    """A new passphrase is too weak; the reason says why."""


class ShareError(QuorumError):
    """PIN shares do not rebuild the PIN: wrong, missing, duplicate or foreign shares."""


class OfficerError(ConsoleError):
    """Unknown, duplicate or revoked officer."""


# --- lifecycle -----------------------------------------------------------------------------


class LifecycleError(ConsoleError):
    """A lifecycle invariant does not hold."""


class TransitionRefusedError(LifecycleError):
    """A key transition is illegal now; `rule` names the rule, `earliest` the first safe time."""

    def __init__(
        self, message: str, hint: str = "", *, rule: str = "", earliest: datetime | None = None
    ) -> None:
        super().__init__(message, hint)
        self.rule = rule
        self.earliest = earliest


# --- ceremonies ----------------------------------------------------------------------------


class ScriptError(ConsoleError):
    """A ceremony script is malformed (file:line and a fix in the message)."""


class PlanError(ConsoleError):
    """A plan cannot be made, found, approved or executed."""


class PlanExpiredError(PlanError):
    """The plan's expires_at has passed."""


class PlanAlreadyExecutedError(PlanError):
    """The plan was executed (or aborted) before: nothing to do."""


class PlanInputsChangedError(PlanError):
    """A file or the ledger changed since the plan was made: the plan no longer holds."""


class ReconcileError(ConsoleError):
    """HSM inventory and ledger disagree; exports are blocked until resolved."""


# --- signing services ----------------------------------------------------------------------


class SignerError(ConsoleError):
    """A signing service cannot sign: its signer.json is malformed, not yet valid, or names a
    key the token does not hold; or its claims or PIN file cannot be used."""


# --- exports and verification --------------------------------------------------------------


class ExportError(ConsoleError):
    """An export cannot be written (private member, target limit, existing file)."""


class TargetLintError(ExportError):
    """A gateway/IdP file breaks its target's limits."""


class VerificationError(ConsoleError):
    """A bundle, checkpoint, approval or audit pack does not verify; the message names the check."""


class FolderMismatchError(VerificationError):
    """A bundle folder differs from the file list its bundle signs. The message names the first
    file; `problems` has one phrase per extra, missing, changed or unreadable file, by name."""

    def __init__(self, message: str, hint: str = "", problems: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint)
        self.problems = problems

    def problem_lines(self) -> list[str]:
        """`problems` as lines safe to print (file names come from disk: control characters
        are escaped, as in `user_message`)."""
        return [_inert(problem) for problem in self.problems]
