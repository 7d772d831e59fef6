"""The audit pack format and its offline verifier (pure Python + `cryptography`).

This module and everything it imports never touch SQLite tooling, `console.hsm`, `pkcs11`,
`textual` or `rich`; `console.verify` re-exports `verify_audit_pack`.

A pack is a directory (format v1):

- `entries.jsonl` — the stored bytes of entries `[0, N)`, one per line (`\\n` after each): exactly
  the entries the checkpoint covers.
- `pending.jsonl` — entries `[N, size)`, not yet cosigned. Its first line is the
  `checkpoint.signed` entry (seq N) recording `checkpoint` (the ledger's convention: a checkpoint
  of size N is recorded as entry N).
- `checkpoint` — the latest signed note (C2SP tlog-checkpoint in a C2SP signed-note).
- `officers.json` — JCS JSON `{"v":1,"origin":...,"officers":[{"name","status","ed25519"
  (a JWK {"kty":"OKP","crv":"Ed25519","x"}),"verifier_key","x25519","enrolled_seq",
  "revoked_seq"}]}`: the officers in force after `checkpoint`, i.e. the replay of
  `entries.jsonl`, in enrolment order (officer entries in `pending.jsonl` are not in force yet).
- `proofs/consistency-<old>-<N>.txt` — for each earlier `checkpoint.signed` entry (old size
  >= 1), a consistency proof to N. Text, one item per line:
  `ceremony-ledger/consistency-proof/v1`, old size, new size, base64 old root, base64 new root,
  then one base64 hash per line (RFC 9162 §2.1.4 order).
- `MANIFEST.sha256` — `sha256sum` lines (`<hex>  <path>`) for every other file, sorted by path.

Verification rule for signatures (`console.ledger.trust`): the final checkpoint and every earlier
recorded one must be signed by at least the routine M of the officers in force before it (the
replay of the entries the previous checkpoint covers; at genesis, of the entries it covers), and
every signature by such an officer must verify; signatures by other keys are ignored
(signed-note). `officers.json` must be exactly the replay of `entries.jsonl`.

Authorization rule (`console.ceremony.authorization`; cosigners sign a root, not each entry):
plans hash to their digests and ask for the class their actions need, approvals verify, ceremonies
start with the M of their class, state changes lie inside them (what is destructive, as an action
of the plan), emergencies not ratified are reported; the fast path reports which ceremony the
step entries it accepts belong to (`WATCH`), without parsing them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from console.ceremony.authorization import STRICT_TYPES, WATCH, Authorization, AuthorizationReplay
from console.clock import format_time
from console.errors import ConsoleError, EntryRejectedError, LedgerTamperedError, VerificationError
from console.files import read_regular_file
from console.ledger import merkle
from console.ledger.blockscan import scan_block
from console.ledger.checkpoint import Checkpoint, parse_checkpoint_body, parse_note
from console.ledger.entry import MAX_ENTRY_BYTES, Acts, Entry, LineScan, parse_entry
from console.ledger.pack_format import (
    CHECKPOINT,
    CHECKPOINT_TYPE,
    ENTRIES,
    MANIFEST,
    OFFICERS,
    PENDING,
    PROOFS,
    officers_document,
    parse_consistency_proof,
    proof_file_name,
)
from console.ledger.packscan import OrderedScans
from console.ledger.trust import TRUST_ENTRY_TYPES, TrustReplay

_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  ([A-Za-z0-9._/-]+)$")
_ACTED_ON = frozenset({*TRUST_ENTRY_TYPES, *STRICT_TYPES})
"""Entry types `_Verifier._entry` (or the officer and authorization replays) does more with than
check and hash: such lines always take the strict path, the others may be accepted by
`scan_block`."""
_BLOCK_BYTES = 1 << 20
"""Read size when scanning here: big enough to amortise a block's overhead, small enough that a
block's values fit in memory the allocator keeps (see `packscan.scan_pieces`). Workers are
handed blocks of `_WORKER_BLOCKS` times that (few hand-overs, each of which wakes the pool's
threads), which they scan in pieces of this size."""
_WORKER_BLOCKS = 4
_WINDOW = 2
"""Blocks in flight per worker: enough to hide a worker's start-up, bounded for memory."""
PARALLEL_MIN_BYTES = 32 << 20
"""Files at least this big are scanned by worker processes (one per core) while this one reads,
hashes and joins; smaller ones are scanned here (starting processes costs ~0.2 s)."""

__all__ = ["AuditReport", "verify_audit_pack"]


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What a verified pack proves."""

    origin: str
    size: int
    root: bytes
    pending: int
    signers: frozenset[str]
    officers: tuple[str, ...]
    earlier_checkpoints: tuple[int, ...]
    expected_checkpoint_size: int | None
    authorization: Authorization
    """The ceremonies (each approved by its quorum), and the emergencies not ratified yet."""


def verify_audit_pack(directory: Path, *, expect_checkpoint: str | None = None) -> AuditReport:
    """Verify an audit pack offline; return what it proves.

    Checks, in order: the checkpoint note's form; every line of entries.jsonl and pending.jsonl
    (canonical bytes, seq continuity, times never decreasing, officer replay, authorization);
    each recorded checkpoint against the tree before it and the officers then active; the tree
    root of
    entries.jsonl against the checkpoint and its signatures; officers.json; the consistency
    proofs; `expect_checkpoint`; finally MANIFEST.sha256 and that no file is missing or extra.

    Raises:
        LedgerTamperedError: the first failed check, naming the file and line (and seq).
    """
    try:
        return _Verifier(Path(directory), expect_checkpoint).run()
    except LedgerTamperedError:
        raise
    except ConsoleError as e:
        raise LedgerTamperedError(e.message, e.hint) from e


class _Verifier:
    def __init__(
        self,
        directory: Path,
        expect_checkpoint: str | None,
        *,
        parallel_min_bytes: int = PARALLEL_MIN_BYTES,
        workers: int | None = None,
    ) -> None:
        self.dir = directory
        self.expect = expect_checkpoint
        self.parallel_min_bytes = parallel_min_bytes
        self.workers = workers if workers is not None else _cores()
        self.digests: dict[str, str] = {}  # SHA-256 of each file read whole, as it was read
        self.blocks_in_workers = 0
        self.cr = merkle.CompactRange()
        self.replay: TrustReplay | None = None
        self.authz: AuthorizationReplay | None = None
        self.last_time = ""
        self.earlier: list[tuple[int, bytes, str]] = []  # (size, root, note)
        self.expect_root: bytes | None = None
        self.expected: Checkpoint | None = None

    def fail(self, message: str, hint: str = "") -> LedgerTamperedError:
        return LedgerTamperedError(message, hint or "the pack was altered; do not trust it")

    def run(self) -> AuditReport:
        try:
            is_folder = self.dir.is_dir()
        except (OSError, ValueError):  # a name too long, a NUL: no such folder either
            is_folder = False
        if not is_folder:
            raise self.fail(f"{self.dir} is not an audit pack folder", "give the pack's folder")
        note = self._read_text(CHECKPOINT)
        try:
            text, _ = parse_note(note)
            head = parse_checkpoint_body(text)
        except VerificationError as e:
            raise self.fail(f"{CHECKPOINT}: {e.message}") from e
        origin, size = head.origin, head.size
        self.replay = TrustReplay(origin, strict=True)
        self.authz = AuthorizationReplay(origin, self.replay)
        if self.expect is not None:
            try:
                self.expected = parse_checkpoint_body(parse_note(self.expect)[0])
            except VerificationError as e:
                raise self.fail(
                    f"expected checkpoint: {e.message}", "give the note as printed"
                ) from e
            if self.expected.origin != origin:
                raise self.fail(
                    f"expected checkpoint is for {self.expected.origin}, the pack for {origin}",
                    "use the checkpoint of this ledger",
                )
            if self.expected.size > size:
                raise self.fail(
                    f"pack covers {size} entries but your checkpoint covers {self.expected.size}"
                    f" (root {_b64(self.expected.root)}): the pack comes from an older ledger",
                    "ask for a pack exported from the current ledger",
                )
        # 1. entries.jsonl: the covered tree.
        cuts = frozenset() if self.expected is None else frozenset({self.expected.size})

        def covered(line_no: int, raw: bytes, seq: int) -> None:
            self._entry(ENTRIES, line_no, raw, seq, origin)

        count = self._scan(ENTRIES, 0, cuts, covered)
        if count != size:
            raise self.fail(f"{ENTRIES} has {count} entries but the checkpoint covers {size}")
        if self.expected is not None and self.expected.size == size:
            self.expect_root = self.cr.root()
        root = self.cr.root()
        if root != head.root:
            raise self.fail(
                f"{ENTRIES}: the root of its {size} entries is {_b64(root)}, the checkpoint "
                f"says {_b64(head.root)}",
                "an entry after the last earlier checkpoint was altered, or the checkpoint",
            )
        replay = self._replay()
        officers = replay.pending
        # 2. pending.jsonl: later entries; the first records this very checkpoint, which counts
        # only when the routine quorum of the officers in force signed it.
        signed: list[Checkpoint] = []

        def later(line_no: int, raw: bytes, seq: int) -> None:
            entry = self._entry(PENDING, line_no, raw, seq, origin)
            if seq == size:
                if (entry.type != CHECKPOINT_TYPE or entry.data.get("note") != note
                        or entry.data.get("size") != size
                        or entry.data.get("root") != _b64(root)):
                    raise self.fail(
                        f"{PENDING} line 1 (seq {size}): is not the entry recording {CHECKPOINT}"
                    )
                signed.append(replay.verified[-1])
            elif entry.type == CHECKPOINT_TYPE:
                raise self.fail(
                    f"{PENDING} line {line_no} (seq {entry.seq}): a later checkpoint exists, "
                    f"so {CHECKPOINT} is not the latest"
                )

        # Lines `scan_block` accepts are never the first nor a checkpoint: nothing more to check.
        pending = self._scan(PENDING, size, frozenset(), later)
        if pending == 0:
            raise self.fail(f"{PENDING} lacks the entry recording {CHECKPOINT} (seq {size})")
        # 3. officers.json is the replay of the covered entries.
        if self._read_bytes(OFFICERS) != officers_document(origin, officers):
            raise self.fail(f"{OFFICERS} does not match the officers the entries enrol")
        # 4. consistency proofs from each earlier checkpoint.
        self._check_proofs(size, root)
        # 5. the auditor's own checkpoint.
        if self.expected is not None and self.expect_root != self.expected.root:
            raise self.fail(
                f"your checkpoint (size {self.expected.size}, root {_b64(self.expected.root)}) "
                f"is not a prefix of this pack (root at that size "
                f"{_b64(self.expect_root or b'')}): the ledger was rewritten",
                "report it: keep both checkpoints as evidence",
            )
        # 6. the manifest, and nothing missing or extra.
        self._check_manifest()
        return AuditReport(
            origin=origin,
            size=size,
            root=root,
            pending=pending,
            signers=signed[0].signers,
            officers=tuple(o.name for o in officers.officers),
            earlier_checkpoints=tuple(s for s, _, _ in self.earlier),
            expected_checkpoint_size=None if self.expected is None else self.expected.size,
            authorization=self._authz().result(),
        )

    def _entry(self, name: str, line_no: int, raw: bytes, seq: int, origin: str) -> Entry:
        where = f"{name} line {line_no} (seq {seq})"
        try:
            entry = parse_entry(raw, expect_seq=seq)
        except EntryRejectedError as e:
            raise self.fail(f"{where}: {e.message}") from e
        when = format_time(entry.time)
        if when < self.last_time:
            raise self.fail(f"{where}: time {when} is earlier than the entry before it")
        self.last_time = when
        if self.expected is not None and self.cr.size == self.expected.size:
            self.expect_root = self.cr.root()
        if entry.type == CHECKPOINT_TYPE:
            self._recorded_checkpoint(where, entry, record=name == ENTRIES)
        else:
            try:
                self._authz().entry(entry, root=self.cr.root)
            except LedgerTamperedError as e:
                raise self.fail(f"{where}: {e.message}", e.hint) from e
            try:
                self._replay().apply(entry)
            except LedgerTamperedError as e:
                raise self.fail(f"{where}: {e.message}") from e
        self.cr.append(entry.leaf_hash)
        return entry

    def _acts(self, name: str, first_seq: int, acts: Acts) -> None:
        """A run of lines `scan_block` accepted, as the authorization replay sees it."""
        for (kind, ceremony), seq in sorted(acts.items(), key=lambda item: item[1]):
            try:  # in seq order: the run's first bad line is named
                self._authz().act(kind, ceremony, seq)
            except LedgerTamperedError as e:
                raise self.fail(f"{name} line {seq - first_seq + 1} (seq {seq}): {e.message}",
                                e.hint) from e

    def _replay(self) -> TrustReplay:
        assert self.replay is not None  # made as soon as the checkpoint names the origin
        return self.replay

    def _authz(self) -> AuthorizationReplay:
        assert self.authz is not None  # made with the trust replay
        return self.authz

    def _recorded_checkpoint(self, where: str, entry: Entry, *, record: bool) -> None:
        data = entry.data
        note = data.get("note")
        here = self.cr.root()
        if data.get("size") != entry.seq or data.get("root") != _b64(here):
            raise self.fail(
                f"{where}: the recorded checkpoint does not match the entries before it "
                f"(an entry before seq {entry.seq}, after the previous checkpoint, was altered)"
            )
        if not isinstance(note, str):
            raise self.fail(f"{where}: the recorded checkpoint has no note")
        try:
            self._replay().apply(entry, root=here)
        except LedgerTamperedError as e:
            raise self.fail(f"{where}: {e.message}", "the checkpoint was forged or the entries "
                            "before it altered") from e
        if record:
            self.earlier.append((entry.seq, here, note))

    def _check_proofs(self, size: int, root: bytes) -> None:
        wanted = {proof_file_name(s, size): (s, r) for s, r, _ in self.earlier if s >= 1}
        folder = self.dir / PROOFS
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        for name in present:
            if name not in wanted:
                raise self.fail(f"{PROOFS}/{name}: no earlier checkpoint of that size")
        for name, (old, old_root) in sorted(wanted.items(), key=lambda kv: kv[1][0]):
            if name not in present:
                raise self.fail(f"{PROOFS}/{name} is missing (checkpoint of size {old})")
            try:
                parsed = parse_consistency_proof(self._read_text(f"{PROOFS}/{name}"))
                if (parsed.old_size, parsed.new_size) != (old, size):
                    raise VerificationError("sizes do not match its name")
                if parsed.old_root != old_root or parsed.new_root != root:
                    raise VerificationError("roots are not the checkpoints' roots")
                merkle.verify_consistency(old, size, parsed.proof, old_root, root)
            except VerificationError as e:
                raise self.fail(f"{PROOFS}/{name}: {e.message}") from e

    def _check_manifest(self) -> None:
        text = self._read_text(MANIFEST)
        listed: dict[str, str] = {}
        for i, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else [None], 1):
            m = _MANIFEST_LINE.match(line or "")
            if m is None or ".." in m.group(2).split("/") or m.group(2) in listed:
                raise self.fail(f"{MANIFEST} line {i}: not '<sha256>  <path>' or a repeat")
            listed[m.group(2)] = m.group(1)
        present = {
            str(p.relative_to(self.dir))
            for p in self.dir.rglob("*")
            if p.is_file() or p.is_symlink()
        }
        present.discard(MANIFEST)
        for name in sorted(present - set(listed)):
            raise self.fail(f"{name} is not listed in {MANIFEST}")
        for name in sorted(set(listed) - present):
            raise self.fail(f"{name} is listed in {MANIFEST} but missing")
        for name, digest in sorted(listed.items()):
            path = self.dir / name
            if path.is_symlink():
                raise self.fail(f"{name} is a symbolic link")
            if (self.digests.get(name) or _file_sha256(path)) != digest:
                raise self.fail(f"{name}: SHA-256 differs from {MANIFEST}")

    def _scan(
        self,
        name: str,
        first_seq: int,
        cuts: frozenset[int],
        strict: Callable[[int, bytes, int], None],
    ) -> int:
        """Verify every line of `name` (seq `first_seq` onwards); return how many there are.

        `scan_block` accepts the plainly valid lines of each block (whole blocks at once when it
        can, else `scan_lines` line by line; for big files in worker processes,
        `packscan.OrderedScans`); here, in file order, their Merkle nodes join the running
        range and every other line goes to `strict(line_no, raw, seq)` after the checks `_lines`
        used to make, so the first bad line fails exactly as when every line took the strict
        path. Records the file's SHA-256 for the manifest check.
        """
        path = self.dir / name
        if not path.is_file() or path.is_symlink():
            raise self.fail(f"{name} is missing")
        parallel = self.workers > 1 and path.stat().st_size >= self.parallel_min_bytes
        count = 0
        truncated: int | None = None

        def use(line_no: int, scan: LineScan) -> None:
            acts = scan.acts  # one per run (made with WATCH): an IndexError, never a silent pass
            for k, (i, before, raw) in enumerate(scan.slow):
                self._acts(name, first_seq, acts[k])
                self.cr.append_range(scan.runs[k])
                if before is not None:
                    self.last_time = before
                if len(raw) > MAX_ENTRY_BYTES:
                    raise self.fail(f"{name} line {line_no + i}: longer than an entry may be")
                strict(line_no + i, raw, first_seq + line_no - 1 + i)
            self._acts(name, first_seq, acts[-1])
            self.cr.append_range(scan.runs[-1])
            if scan.last_time is not None:
                self.last_time = scan.last_time

        if not parallel:
            for line_no, block, complete in self._blocks(name, _BLOCK_BYTES):
                if not complete:
                    truncated = line_no
                    break
                scan = scan_block(bytes(block), first_seq + line_no - 1, _ACTED_ON, cuts,
                                  WATCH)
                use(line_no, scan)
                count += scan.count
        else:
            big = _WORKER_BLOCKS * _BLOCK_BYTES
            scans = OrderedScans(self.workers, window=_WINDOW, slot_bytes=2 * big,
                                 piece_bytes=_BLOCK_BYTES, first_seq=first_seq,
                                 special=_ACTED_ON, cuts=cuts, watch=WATCH)
            try:
                for line_no, block, complete in self._blocks(name, big):
                    if not complete:
                        truncated = line_no
                        break
                    for done_line, scan in scans.push(line_no, block):
                        use(done_line, scan)
                        count += scan.count
                for done_line, scan in scans.drain():
                    use(done_line, scan)
                    count += scan.count
            finally:
                scans.close()
                self.blocks_in_workers += scans.blocks_in_workers
        if truncated is not None:
            raise self.fail(f"{name} line {truncated}: no newline at its end (truncated?)")
        return count

    def _blocks(self, name: str, size: int) -> Iterator[tuple[int, bytes | memoryview, bool]]:
        """`(number of its first line, whole lines, True)` in file order, then
        `(line number, the rest, False)` when the file does not end with a newline.

        The file is read into one buffer, reused: a block is valid until the next is asked for
        (a new 4 MiB object per block was fresh pages each time, a page fault per 4 KiB)."""
        h = hashlib.sha256()
        line_no = 1
        carry = b""
        buffer = bytearray(size)
        view = memoryview(buffer)
        with open(self.dir / name, "rb") as f:
            while got := f.readinto(buffer):
                h.update(view[:got])
                end = buffer.rfind(b"\n", 0, got) + 1
                if not end:
                    carry += view[:got]
                    continue
                lines = buffer.count(b"\n", 0, end)
                block: bytes | memoryview = view[:end]
                if carry:
                    block, lines = carry + block, lines + carry.count(b"\n")
                carry = bytes(view[end:got])
                yield line_no, block, True
                line_no += lines
        if carry:
            yield line_no, carry, False
        else:
            self.digests[name] = h.hexdigest()

    def _read_bytes(self, name: str) -> bytes:
        path = self.dir / name
        if not path.is_file() or path.is_symlink():
            raise self.fail(f"{name} is missing")
        try:  # bounded, a regular file: a pack handed over may hold a huge or special file
            return read_regular_file(path)
        except VerificationError as e:
            raise self.fail(f"{name}: {e.message.removeprefix(f'{path} ')}") from e

    def _read_text(self, name: str) -> str:
        try:
            return self._read_bytes(name).decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(f"{name} is not UTF-8 text") from e


def _cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every core counts
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
