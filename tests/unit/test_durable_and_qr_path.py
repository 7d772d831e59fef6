"""Files synced together (`exports.durable.fsync_all`) and the QR path written from the module
matrix (`exports.qr.qr_svg`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.exports import durable
from console.exports.qr import _qr, qr_svg


def test_fsync_all_syncs_every_descriptor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync

    def record(fd: int) -> None:
        real(fd)
        synced.append(fd)

    monkeypatch.setattr(os, "fsync", record)
    fds = [os.open(tmp_path / f"f{i}", os.O_WRONLY | os.O_CREAT) for i in range(5)]
    fds.append(os.open(tmp_path, os.O_RDONLY))
    try:
        durable.fsync_all(fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert sorted(synced) == sorted(fds)


def test_fsync_all_raises_the_failure_after_all_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def failing(fd: int) -> None:
        seen.append(fd)
        if fd == 2:
            raise OSError(5, "Input/output error (injected)")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="injected"):
        durable.fsync_all([1, 2, 3, 4])
    assert sorted(seen) == [1, 2, 3, 4]


@pytest.mark.parametrize("count", [1, 4])
def test_work_done_meanwhile_does_not_cut_the_fsyncs_short(
        count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """`meanwhile` runs while the fsyncs are under way; when it fails, its error is raised
    only after every fsync ended (the caller closes the descriptors next)."""
    import threading

    release = threading.Event()
    ended: list[int] = []

    def slow(fd: int) -> None:
        release.wait(5)
        ended.append(fd)

    def work() -> None:
        if count > 1:
            assert not ended  # the disk is still at it
        release.set()
        raise ValueError("the work failed")

    monkeypatch.setattr(os, "fsync", slow)
    with pytest.raises(ValueError, match="the work failed"):
        durable.fsync_all(list(range(count)), work)
    assert sorted(ended) == list(range(count))


def test_a_bundle_hands_its_digest_to_the_work_done_while_it_syncs(tmp_path: Path) -> None:
    from console.exports.writer import write_bundle

    seen: list[str] = []
    files = {"jwks.jwt": b"header.claims.signature", "jwks.json": b"{}"}
    result = write_bundle(tmp_path, "login", 1, files, while_syncing=seen.append)
    assert seen == [result.sha256]

    def failing(digest: str) -> None:
        raise ValueError(digest)

    with pytest.raises(ValueError):  # as any failure before the rename: no folder
        write_bundle(tmp_path, "login", 2, files, while_syncing=failing)
    assert sorted(p.name for p in (tmp_path / "login").iterdir()) == ["1"]


def test_a_bundle_is_never_written_through_a_linked_keyset_folder(tmp_path: Path) -> None:
    from console.errors import ExportError
    from console.exports.writer import write_bundle

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "login").symlink_to(elsewhere)
    with pytest.raises(ExportError, match="symbolic link"):
        write_bundle(tmp_path / "exports", "login", 1, {"jwks.jwt": b"h.c.s"})
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("payload", ["abc", "plan-sha256:" + "ab" * 32, "x" * 200])
def test_qr_path_draws_exactly_the_dark_modules(payload: str) -> None:
    matrix = _qr(payload, 4).get_matrix()
    size = len(matrix)
    svg = qr_svg(payload)
    assert f'viewBox="0 0 {size} {size}"' in svg and svg.count("<path") == 1
    drawn = [[False] * size for _ in range(size)]
    for x, y, width in re.findall(r"M(\d+),(\d+)h(\d+)v1h-\3z", svg):
        for i in range(int(width)):
            assert not drawn[int(y)][int(x) + i]  # runs never overlap
            drawn[int(y)][int(x) + i] = True
    assert drawn == [[bool(v) for v in row] for row in matrix]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=120))
def test_a_remembered_version_gives_the_code_a_fresh_fit_gives(text: str) -> None:
    """`_qr` reuses the version qrcode's own fit chose for the same data shape: the matrix is
    the one a fit of this very text makes, whatever other text filled the memo first."""
    import qrcode

    from console.exports import qr

    fresh = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4,
                          box_size=8, mask_pattern=qr.FIXED_MASK)
    fresh.add_data(text)
    fresh.make(fit=True)
    qr._qr(text, 4)  # the memo now holds this shape, if it did not already
    assert qr._qr(text, 4).get_matrix() == fresh.get_matrix()


@pytest.mark.parametrize("level", [0, 1, 2, 3])  # qrcode's ERROR_CORRECT_M, L, H, Q
def test_codewords_are_qrcodes_own_for_every_version_and_level(level: int) -> None:
    """`codewords` (integer Reed–Solomon) gives exactly what qrcode's `create_data` gives:
    every version, every level, data that fills a code partly and wholly (one or many
    blocks of two sizes, padding, terminator cut short)."""
    import random

    import qrcode
    import qrcode.base
    import qrcode.util

    from console.exports.qr import codewords

    rng = random.Random(level)
    for version in range(1, 41):
        capacity = sum(b.data_count for b in qrcode.base.rs_blocks(version, level))
        room = capacity - (3 if version > 9 else 2)  # byte mode: 4 bits of mode, 8/16 of length
        for length in sorted({1, room // 2, room}):
            code = qrcode.QRCode(version=version, error_correction=level)
            code.add_data(bytes(rng.randrange(256) for _ in range(length)), optimize=0)
            assert codewords(code) == qrcode.util.create_data(version, level, code.data_list)
