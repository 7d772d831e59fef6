"""Officers as the faces see them: reading and unlocking card files, listing the officers.

Cards are files an officer keeps on their own medium; the console reads one only for the moment
it is unlocked. The officers' status comes from the ledger (enrolment and revocation entries).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from console.clock import format_optional, wall_clock
from console.errors import CardError, ExportError, OfficerError
from console.quorum.cards import (
    check_passphrase,
    create_card,
    read_card_public,
)
from console.quorum.words import digest_words

if TYPE_CHECKING:
    from console.workspace import Workspace

MAX_CARD_BYTES = 64 * 1024
FINGERPRINT_WORDS = 8
"""Words of a card's fingerprint, everywhere it is shown (new-card, officer list, TUI)."""


def read_card_file(path: Path) -> bytes:
    """The bytes of a card file.

    Raises:
        CardError: the file cannot be read or is far too large to be a card.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CARD_BYTES + 1)
    except OSError as e:
        raise CardError(f"cannot read card {path}: {e.strerror}", "check the path") from e
    except ValueError as e:  # a NUL in the path
        raise CardError("the card path is not a valid file name", "check the path") from e
    if len(data) > MAX_CARD_BYTES:
        raise CardError(f"{path} is not an officer card (too large)", "give the .card file")
    return data


def write_new_card(name: str, passphrase: str, out: Path, *,
                   unsafe_kdf_cost_for_tests: int | None = None) -> str:
    """Make a new officer card at `out` (never overwriting) and say how to check it aloud.

    Raises:
        WeakPassphraseError: the passphrase is too weak.
        ExportError: `out` exists.
    """
    check_passphrase(passphrase, name=name)
    data = create_card(name, passphrase, now=wall_clock(),
                       unsafe_kdf_cost_for_tests=unsafe_kdf_cost_for_tests)
    write_private_file(out, data)
    words = " ".join(digest_words(read_card_public(data).fingerprint(), count=FINGERPRINT_WORDS))
    return f"card for {name} written to {out}; fingerprint words: {words}"


def write_private_file(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600; refuse to overwrite anything."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise ExportError(f"{path} already exists", "choose another file name") from e
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())  # a card the officer walks away with is whole on disk


class OfficerRow(TypedDict):
    """One row of `ceremony officer list` (and its `--json`)."""

    name: str
    status: str
    enrolled_at: str | None
    revoked_at: str | None
    fingerprint: str
    last_approval: str | None


def officer_rows(ws: Workspace) -> list[OfficerRow]:
    """One row per officer the ledger knows, with the last approval each gave.

    `status` is `enrolled` or `revoked` as in force (a checkpoint ratified it), or `pending`
    when an officer change is recorded but no checkpoint covers it yet.
    """
    trust = ws.trust
    last_approval: dict[str, str] = {}
    for entry in ws.ledger.entries_of_type("ceremony.approved"):
        last_approval[str(entry.data.get("officer"))] = format_optional(entry.time) or ""
    rows: list[OfficerRow] = []
    for officer in trust.pending_officers.officers:
        in_force = trust.officers.get(officer.name)
        status = str(officer.status) if in_force is not None and \
            in_force.status is officer.status else f"{officer.status} (pending)"
        rows.append({
            "name": officer.name,
            "status": status,
            "enrolled_at": format_optional(officer.enrolled_at),
            "revoked_at": format_optional(officer.revoked_at),
            "fingerprint": " ".join(digest_words(officer.fingerprint(), count=FINGERPRINT_WORDS)),
            "last_approval": last_approval.get(officer.name),
        })
    return rows


def render_officers(rows: Sequence[OfficerRow]) -> str:
    if not rows:
        raise OfficerError("no officers in the ledger", "run `ceremony init` or the demo")
    lines = [f"{'officer':<16} {'status':<9} {'enrolled':<21} {'last approval':<21} fingerprint"]
    for row in rows:
        lines.append(
            f"{row['name']:<16} {row['status']:<9} {row['enrolled_at'] or '—':<21} "
            f"{row['last_approval'] or '—':<21} {row['fingerprint']}"
        )
    return "\n".join(lines)
