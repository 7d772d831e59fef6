"""RFC 9162 (Certificate Transparency v2) Merkle tree: hashes, compact ranges, proofs.

Pure functions over hashes; no storage. The ledger keeps every *perfect* subtree hash (a node
whose leaves are `[i * 2**level, (i + 1) * 2**level)`); any RFC 9162 subtree hash, any root and
any proof is then a handful of lookups, reached here through a `subtree hash` callback.

- leaf hash: SHA-256(0x00 || entry bytes); node hash: SHA-256(0x01 || left || right);
  the empty tree's root is SHA-256("").
- `CompactRange` appends a leaf in O(log n) and reports the perfect nodes the append completed.
- `inclusion_path` / `consistency_path` generate proofs (RFC 9162 §2.1.3.1, §2.1.4.1);
  `verify_inclusion` / `verify_consistency` check them (§2.1.3.2, §2.1.4.2) and raise
  `VerificationError` naming the failed check. The subtree variants follow transparency-dev/merkle
  (used only to run its subtree probes).

Strictness beyond the reference implementation is listed in `KNOWN_DEVIATIONS`.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import methodcaller

from console.errors import VerificationError

HASH_SIZE = 32
_DIGEST = methodcaller("digest")
EMPTY_ROOT = hashlib.sha256(b"").digest()

KNOWN_DEVIATIONS: dict[str, str] = {
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json": (
        "upstream accepts equal sizes with 12-byte 'roots'; we require every hash to be 32 bytes, "
        "so a malformed root is never reported as consistent"
    ),
    "subtreeconsistency/additional/sizes-are-equal-one-and-proof-is-empty.json": (
        "the same 12-byte 'roots' for a subtree covering the whole tree: rejected for the same "
        "reason"
    ),
    "subtreeconsistency/start>0": (
        "consistency of a subtree that starts after leaf 0 is not implemented: the ledger never "
        "proves such subtrees and no probe has a valid one (every start>0 probe is an empty or "
        "invalid range, which we check)"
    ),
}
"""Where our verifier is stricter than transparency-dev/merkle, with the reason."""

SubtreeHash = Callable[[int, int], bytes]
"""`mth(start, end)`: the RFC 9162 hash of the leaves `[start, end)` (only ranges a proof needs)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, leaves: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """The perfect subtrees `(level, hash)` covering leaves `[start, start + len(leaves))`, left to
    right: each is aligned (its first leaf index is a multiple of `2**level`), so
    `CompactRange.append_range` can join them to a range ending at `start`. Lets the hashing of
    a block of leaves happen away from the running range (another process)."""
    hashes: list[bytes] = []
    levels: list[int] = []
    sha256 = hashlib.sha256
    index = start
    for leaf in leaves:
        if len(leaf) != HASH_SIZE:
            raise VerificationError("leaf hash is not 32 bytes")
        h, level, i = leaf, 0, index
        # The last node is the left sibling exactly when it has this level and i is odd: a node
        # whose sibling lies before `start` never has a peer here to merge with.
        while i & 1 and levels and levels[-1] == level:
            h = sha256(b"\x01" + hashes.pop() + h).digest()
            levels.pop()
            level += 1
            i >>= 1
        hashes.append(h)
        levels.append(level)
        index += 1
    return list(zip(levels, hashes, strict=True))


def node_hashes(lefts: Sequence[bytes], rights: Sequence[bytes]) -> list[bytes]:
    """`node_hash(l, r)` for each pair, in order, with no Python bytecode per node.

    Each input is built by one `join` of (prefix, left, right): a fifth faster than two
    concatenations, which copy the left hash twice and make an object more."""
    return list(map(_DIGEST, map(hashlib.sha256, map(
        b"".join, zip(repeat(b"\x01"), lefts, rights)))))


def aligned_nodes(start: int, leaves: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """`range_nodes(start, leaves)`, computed a level at a time: each aligned perfect subtree
    (the largest that starts at the next leaf and fits), its nodes hashed pairwise with C-level
    `map`s instead of a Python loop per leaf. The leaves must be 32-byte hashes (ours are)."""
    out: list[tuple[int, bytes]] = []
    pos, index, left = 0, start, len(leaves)
    while left:
        level = (index & -index).bit_length() - 1 if index else left.bit_length() - 1
        while 1 << level > left:
            level -= 1
        width = 1 << level
        hashes = list(leaves[pos:pos + width])
        while len(hashes) > 1:
            hashes = node_hashes(hashes[0::2], hashes[1::2])
        out.append((level, hashes[0]))
        pos += width
        index += width
        left -= width
    return out


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """Root of a tree given all its leaf hashes (linear time, for verifiers and tests)."""
    cr = CompactRange()
    for h in leaves:
        cr.append(h)
    return cr.root()


@dataclass(slots=True)
class CompactRange:
    """The perfect subtrees covering leaves `[0, size)`, left to right, largest first.

    `hashes[i]` is the root of a perfect subtree of `2**levels[i]` leaves; together they are the
    binary decomposition of `size`. Mutable on purpose: it is the running state of an append.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the perfect nodes `(level, index, hash)` it completed."""
        if len(leaf) != HASH_SIZE:
            raise VerificationError("leaf hash is not 32 bytes")
        made: list[tuple[int, int, bytes]] = []
        index = self.size
        h, level = leaf, 0
        while self.levels and self.levels[-1] == level:
            left = self.hashes.pop()
            self.levels.pop()
            h = node_hash(left, h)
            level += 1
            index >>= 1
            made.append((level, index, h))
        self.hashes.append(h)
        self.levels.append(level)
        self.size += 1
        return made

    def append_range(self, nodes: Sequence[tuple[int, bytes]]) -> None:
        """Add the perfect subtrees `range_nodes(self.size, leaves)` returned: the same state as
        appending each of those leaves."""
        hashes, levels = self.hashes, self.levels
        for level, h in nodes:
            if len(h) != HASH_SIZE or self.size & ((1 << level) - 1):
                raise VerificationError("subtree is not a 32-byte hash aligned at the range's end")
            self.size += 1 << level
            # An aligned node meets an equal-level last node only as its right sibling.
            while levels and levels[-1] == level:
                h = node_hash(hashes.pop(), h)
                levels.pop()
                level += 1
            hashes.append(h)
            levels.append(level)

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = node_hash(h, r)
        return r

    def copy(self) -> CompactRange:
        return CompactRange(self.size, list(self.hashes), list(self.levels))

    @classmethod
    def from_perfect_nodes(cls, size: int, node: Callable[[int, int], bytes]) -> CompactRange:
        """Rebuild the range for `size` from stored perfect nodes: `node(level, index)`."""
        cr = cls(size=size)
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                cr.hashes.append(node(level, start >> level))
                cr.levels.append(level)
                start += 1 << level
        return cr


def subtree_hash_from_perfect(node: Callable[[int, int], bytes]) -> SubtreeHash:
    """Turn a perfect-node lookup into an RFC 9162 subtree hash function.

    A range the RFC decomposition produces is either a perfect node or splits at its largest power
    of two into a perfect left part and a smaller right part, so each call costs O(log n) lookups.
    """

    def mth(start: int, end: int) -> bytes:
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            level = n.bit_length() - 1
            return node(level, start >> level)
        k = largest_power_of_two_below(n)
        return node_hash(mth(start, start + k), mth(start + k, end))

    return mth


def root_with_leaves(size: int, leaves: Mapping[int, bytes], stored: SubtreeHash) -> bytes:
    """The root of `[0, size)` recomputed through the given leaf hashes (a batch inclusion proof).

    Every range holding one of `leaves` is recomputed from its children; every other range is
    taken from `stored` (e.g. persisted nodes, untrusted). Comparing the result with a signed root
    proves all the given leaves at once: the nodes on their paths are shared, so k leaves of an
    n-leaf tree cost about k * log2(n / k) lookups, not k * log2(n).
    """
    indexes = sorted(i for i in leaves if 0 <= i < size)
    if len(indexes) != len(leaves):
        raise VerificationError(f"a leaf to prove is outside the tree of size {size}")

    def mth(lo: int, hi: int, first: int, last: int) -> bytes:
        # indexes[first:last] are the leaves inside [lo, hi)
        if first == last:
            return stored(lo, hi)
        if hi - lo == 1:
            return leaves[lo]
        k = largest_power_of_two_below(hi - lo)
        cut = bisect.bisect_left(indexes, lo + k, first, last)
        return node_hash(mth(lo, lo + k, first, cut), mth(lo + k, hi, cut, last))

    if size == 0:
        return EMPTY_ROOT
    return mth(0, size, 0, len(indexes))


def inclusion_path(index: int, size: int, mth: SubtreeHash) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf level first."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = largest_power_of_two_below(hi - lo)
        if m < k:
            path.append(mth(lo + k, hi))
            hi = lo + k
        else:
            path.append(mth(lo, lo + k))
            lo += k
            m -= k
    path.reverse()
    return path


def consistency_path(old: int, new: int, mth: SubtreeHash) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old, D[0:new]); empty when old == new."""
    if not 0 < old <= new:
        raise VerificationError(f"no consistency proof from size {old} to size {new}")
    path: list[bytes] = []
    lo, hi, m, whole = 0, new, old, True
    while True:
        if m == hi - lo:
            if not whole:
                path.append(mth(lo, hi))
            break
        k = largest_power_of_two_below(hi - lo)
        if m <= k:
            path.append(mth(lo + k, hi))
            hi = lo + k
        else:
            path.append(mth(lo, lo + k))
            lo += k
            m -= k
            whole = False
    path.reverse()
    return path


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root that `proof` implies for `leaf` at `index` in `size`."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof element {i}")
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the tree needs")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf` is entry `index` of the tree of `size` with `root`.

    Raises:
        VerificationError: the proof is malformed or leads to another root.
    """
    _check_hash(root, "root")
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise VerificationError(f"inclusion proof for leaf {index} does not lead to the root")


def verify_consistency(
    old: int, new: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree of size `old` with `old_root` is a prefix of `new` with `new_root`.

    Raises:
        VerificationError: the sizes are impossible, the proof malformed, or a root differs.
    """
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    if old == 0:
        raise VerificationError("no consistency proof from an empty tree")
    if new < old:
        raise VerificationError(f"new size {new} is smaller than old size {old}")
    if old == new:
        if proof:
            raise VerificationError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise VerificationError(f"roots differ at the same size {old}")
        return
    if not proof:
        raise VerificationError("consistency proof is empty")
    for i, p in enumerate(proof):
        _check_hash(p, f"consistency proof element {i}")
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is longer than the trees allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is shorter than the trees need")
    if fr != old_root:
        raise VerificationError(f"consistency proof does not lead to the old root (size {old})")
    if sr != new_root:
        raise VerificationError(f"consistency proof does not lead to the new root (size {new})")


def _bit_ceil(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _check_subtree_range(start: int, end: int) -> None:
    if start > end:
        raise VerificationError(f"subtree [{start}, {end}) is reversed")
    if start == 0 or start == end:
        return
    n = end - start
    if n > 1 << 63 or start % _bit_ceil(n) != 0:
        raise VerificationError(f"[{start}, {end}) is not a subtree")


def verify_subtree_inclusion(
    index: int, start: int, end: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf `index` lies in the subtree `[start, end)` whose hash is `root`."""
    _check_subtree_range(start, end)
    if not start <= index < end:
        raise VerificationError(f"leaf {index} is outside subtree [{start}, {end})")
    verify_inclusion(index - start, end - start, leaf, proof, root)


def verify_subtree_consistency(
    start: int, end: int, size: int, proof: Sequence[bytes], subtree_root: bytes, root: bytes
) -> None:
    """Check that the subtree `[start, end)` with `subtree_root` is part of the tree of `size`.

    Only `start == 0` (ordinary consistency) and empty subtrees are supported; see
    `KNOWN_DEVIATIONS`.
    """
    if start == end:
        if end > size:
            raise VerificationError(f"empty subtree at {start} is beyond size {size}")
        if proof:
            raise VerificationError("an empty subtree has an empty proof")
        if subtree_root != EMPTY_ROOT:
            raise VerificationError("an empty subtree's hash is SHA-256 of nothing")
        return
    _check_subtree_range(start, end)
    if end > size:
        raise VerificationError(f"subtree [{start}, {end}) is beyond size {size}")
    if start != 0:
        raise VerificationError("subtree consistency from start > 0 is not supported")
    if end == size:
        _check_hash(subtree_root, "subtree root")
        _check_hash(root, "root")
        if proof:
            raise VerificationError("proof of a whole tree must be empty")
        if subtree_root != root:
            raise VerificationError("subtree covering the whole tree has another root")
        return
    verify_consistency(end, size, proof, subtree_root, root)
