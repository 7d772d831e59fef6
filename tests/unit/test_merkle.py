"""RFC 9162 tree: every transparency-dev/merkle probe, plus properties against a naive tree.

The probes are copied into tests/unit/data/merkle (provenance in its README.md); each is
parametrized by its path. A probe our verifier deliberately judges differently is listed in
`console.ledger.merkle.KNOWN_DEVIATIONS` and asserted with the outcome flipped, never skipped.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.errors import VerificationError
from console.ledger import merkle

DATA = Path(__file__).parent / "data" / "merkle"
FOLDERS = {"inclusion": 98, "consistency": 98, "subtreeinclusion": 204, "subtreeconsistency": 118}


def load_probes(folder: str) -> list[tuple[str, dict[str, Any]]]:
    """One loader for the probe format: (id relative to the data folder, parsed probe)."""
    out = []
    for path in sorted((DATA / folder).rglob("*.json")):
        out.append((str(path.relative_to(DATA)), json.loads(path.read_text())))
    return out


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def proof_of(probe: dict[str, Any]) -> list[bytes]:
    return [b64(p) for p in probe["proof"] or []]


def expect(probe_id: str, probe: dict[str, Any], run: Any) -> None:
    want_err = probe["wantErr"]
    if probe_id in merkle.KNOWN_DEVIATIONS:
        want_err = not want_err
    if want_err:
        with pytest.raises(VerificationError):
            run()
    else:
        run()


def test_probe_files_have_the_expected_shape() -> None:
    for folder, count in FOLDERS.items():
        probes = load_probes(folder)
        assert len(probes) == count, folder
        for _, probe in probes:
            assert isinstance(probe["wantErr"], bool)
    # Every deviation we claim names a real probe (or the documented pseudo-id).
    for key in merkle.KNOWN_DEVIATIONS:
        assert (DATA / key).exists() or key == "subtreeconsistency/start>0"


@pytest.mark.parametrize(
    ("probe_id", "probe"), load_probes("inclusion"), ids=lambda v: v if isinstance(v, str) else ""
)
def test_inclusion_probe(probe_id: str, probe: dict[str, Any]) -> None:
    expect(
        probe_id,
        probe,
        lambda: merkle.verify_inclusion(
            probe["leafIdx"],
            probe["treeSize"],
            b64(probe["leafHash"]),
            proof_of(probe),
            b64(probe["root"]),
        ),
    )


@pytest.mark.parametrize(
    ("probe_id", "probe"), load_probes("consistency"), ids=lambda v: v if isinstance(v, str) else ""
)
def test_consistency_probe(probe_id: str, probe: dict[str, Any]) -> None:
    expect(
        probe_id,
        probe,
        lambda: merkle.verify_consistency(
            probe["size1"],
            probe["size2"],
            proof_of(probe),
            b64(probe["root1"]),
            b64(probe["root2"]),
        ),
    )


@pytest.mark.parametrize(
    ("probe_id", "probe"),
    load_probes("subtreeinclusion"),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_subtree_inclusion_probe(probe_id: str, probe: dict[str, Any]) -> None:
    expect(
        probe_id,
        probe,
        lambda: merkle.verify_subtree_inclusion(
            probe["leafIdx"],
            probe["start"],
            probe["end"],
            b64(probe["leafHash"]),
            proof_of(probe),
            b64(probe["root"]),
        ),
    )


@pytest.mark.parametrize(
    ("probe_id", "probe"),
    load_probes("subtreeconsistency"),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_subtree_consistency_probe(probe_id: str, probe: dict[str, Any]) -> None:
    # The unsupported case (start > 0, non-empty) never appears with wantErr false.
    assert not (probe["start"] > 0 and probe["start"] < probe["end"] and not probe["wantErr"])
    expect(
        probe_id,
        probe,
        lambda: merkle.verify_subtree_consistency(
            probe["start"],
            probe["end"],
            probe["size"],
            proof_of(probe),
            b64(probe["root1"]),
            b64(probe["root2"]),
        ),
    )


# --- the reference tree of the probes, built by our own code ---------------------------------

REFERENCE_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
REFERENCE_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def naive_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, written recursively and independently of the module under test."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:])).digest()


def test_reference_tree_roots_at_every_size() -> None:
    for size, want in enumerate(REFERENCE_ROOTS):
        hashes = [merkle.leaf_hash(d) for d in REFERENCE_LEAVES[:size]]
        assert merkle.root_from_leaf_hashes(hashes).hex() == want


def test_our_proofs_equal_the_probe_happy_paths() -> None:
    hashes = [merkle.leaf_hash(d) for d in REFERENCE_LEAVES]
    mth = memory_mth(hashes)
    for probe_id, probe in load_probes("inclusion"):
        if probe_id.split("/")[0].isdigit() and probe_id.endswith("happy-path.json"):
            assert merkle.inclusion_path(probe["leafIdx"], probe["treeSize"], mth) == proof_of(
                probe
            )
    for probe_id, probe in load_probes("consistency"):
        if probe_id.split("/")[0].isdigit() and probe_id.endswith("happy-path.json"):
            assert merkle.consistency_path(probe["size1"], probe["size2"], mth) == proof_of(probe)


def memory_mth(hashes: list[bytes]) -> merkle.SubtreeHash:
    """Subtree hash by the naive recursion over leaf hashes (no perfect-node shortcut)."""

    def mth(start: int, end: int) -> bytes:
        part = hashes[start:end]
        if len(part) == 1:
            return part[0]
        k = merkle.largest_power_of_two_below(len(part))
        return merkle.node_hash(mth(start, start + k), mth(start + k, end))

    return mth


def perfect_nodes(hashes: list[bytes]) -> dict[tuple[int, int], bytes]:
    cr = merkle.CompactRange()
    nodes = {(0, i): h for i, h in enumerate(hashes)}
    for h in hashes:
        for level, index, value in cr.append(h):
            nodes[(level, index)] = value
    return nodes


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_generated_proofs_verify_and_roots_match_naive(
    leaves: list[bytes], data: st.DataObject
) -> None:
    hashes = [merkle.leaf_hash(d) for d in leaves]
    nodes = perfect_nodes(hashes)
    mth = merkle.subtree_hash_from_perfect(lambda level, index: nodes[(level, index)])
    cr = merkle.CompactRange()
    for size in range(1, len(hashes) + 1):
        cr.append(hashes[size - 1])
        want = naive_root(leaves[:size])
        assert cr.root() == want
        assert mth(0, size) == want
        rebuilt = merkle.CompactRange.from_perfect_nodes(size, lambda lv, ix: nodes[(lv, ix)])
        assert rebuilt.root() == want
    size = data.draw(st.integers(1, len(hashes)))
    index = data.draw(st.integers(0, size - 1))
    root = naive_root(leaves[:size])
    path = merkle.inclusion_path(index, size, mth)
    assert path == merkle.inclusion_path(index, size, memory_mth(hashes))
    merkle.verify_inclusion(index, size, hashes[index], path, root)
    old = data.draw(st.integers(1, size))
    cpath = merkle.consistency_path(old, size, mth)
    merkle.verify_consistency(old, size, cpath, naive_root(leaves[:old]), root)
    if cpath:
        bad = [bytes([cpath[0][0] ^ 1]) + cpath[0][1:], *cpath[1:]]
        with pytest.raises(VerificationError):
            merkle.verify_consistency(old, size, bad, naive_root(leaves[:old]), root)
    wrong_leaf = hashlib.sha256(b"not a leaf").digest()
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(index, size, wrong_leaf, path, root)
