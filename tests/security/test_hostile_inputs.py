"""Files handed to an operator or an auditor by someone hostile: `ceremony verify bundle` and
`ceremony verify audit` must refuse them with one line, never hang or exhaust memory.

Each case failed before its fix: a FIFO in place of `jwks.jwt` (or of the `--previous` bundle)
blocked the verifier for ever (the folder check, which names FIFOs, came after reading the
bundle with a plain open), and an audit pack's `checkpoint` (or officers.json, MANIFEST.sha256,
a proof) of a few gigabytes was read whole into memory (a MemoryError traceback, or the OOM
killer).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import (
    PYTHON,
    _env,
    assert_one_error,
    clone,
    make_demo,
    ok,
)

pytestmark = pytest.mark.hsm

HANG = 30  # seconds: far more than a refusal takes, far less than a hang


@pytest.fixture(scope="module")
def hostile_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("hostile-inputs") / "demo")


def _limit_memory() -> None:
    two_gib = 2 << 30
    resource.setrlimit(resource.RLIMIT_AS, (two_gib, two_gib))


def _verify(*args: str, cwd: Path, limit_memory: bool = False
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "console", "verify", *args], capture_output=True,
                          text=True, env=_env(), cwd=cwd, timeout=HANG, check=False,
                          preexec_fn=_limit_memory if limit_memory else None)


def _bundle_copy(ws: Path, seq: int, at: Path) -> Path:
    shutil.copytree(ws / "exports" / "demo-api" / str(seq), at)
    shutil.copy(ws / "exports" / "bundle-signing-key.jwk", at.parent / "trust.jwk")
    return at


def test_a_fifo_in_place_of_the_bundle_is_refused_without_hanging(
        hostile_demo: Path, tmp_path: Path) -> None:
    folder = _bundle_copy(hostile_demo, 2, tmp_path / "2")
    (folder / "jwks.jwt").unlink()
    os.mkfifo(folder / "jwks.jwt")
    result = _verify("bundle", "jwks.jwt", "--trust", "../trust.jwk", cwd=folder)
    assert_one_error(result, 1, "not a regular file (a FIFO)")


def test_a_fifo_in_place_of_the_previous_bundle_is_refused_without_hanging(
        hostile_demo: Path, tmp_path: Path) -> None:
    folder = _bundle_copy(hostile_demo, 2, tmp_path / "2")
    (tmp_path / "1").mkdir()
    os.mkfifo(tmp_path / "1" / "jwks.jwt")
    result = _verify("bundle", "jwks.jwt", "--trust", "../trust.jwk",
                     "--previous", "../1/jwks.jwt", cwd=folder)
    assert_one_error(result, 1, "not a regular file (a FIFO)")


def test_a_folder_given_as_the_expected_checkpoint_is_one_error_line(tmp_path: Path) -> None:
    """Found by the CLI fuzzer: `--expect-checkpoint /` ended in an IsADirectoryError
    traceback (the file was opened as a stream before its kind was checked)."""
    (tmp_path / "pack").mkdir()
    result = _verify("audit", str(tmp_path / "pack"), "--expect-checkpoint", "/", cwd=tmp_path)
    assert_one_error(result, 1, "is a folder, not a file")


@pytest.mark.parametrize("name", ["checkpoint", "officers.json", "MANIFEST.sha256"])
def test_a_huge_file_in_an_audit_pack_is_refused_in_bounded_memory(
        hostile_demo: Path, tmp_path: Path, name: str) -> None:
    pack = tmp_path / "pack"
    ok(hostile_demo, "audit", "export", "--out", str(pack))
    with open(pack / name, "r+b") as f:
        f.truncate(6 << 30)  # sparse: costs no disk
    result = _verify("audit", str(pack), cwd=tmp_path, limit_memory=True)
    assert_one_error(result, 1, name)


def test_a_folder_nested_past_path_max_is_named_not_a_traceback(
        hostile_demo: Path, tmp_path: Path) -> None:
    """Before, scanning the folder raised OSError (File name too long) as a traceback."""
    folder = _bundle_copy(hostile_demo, 2, tmp_path / "2")
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(2100):  # "a/" * 2100: past PATH_MAX (4096)
            os.mkdir("a", dir_fd=fd)
            inner = os.open("a", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    try:
        result = _verify("bundle", "jwks.jwt", "--trust", "../trust.jwk", cwd=folder)
        assert_one_error(result, 1, "cannot be read")
    finally:
        _remove_nested(folder, "a")


def _remove_nested(folder: Path, name: str) -> None:
    """Remove a chain of nested folders deeper than shutil.rmtree's recursion (and pytest's
    clean-up of old temporary folders) can go."""
    fds = [os.open(folder, os.O_RDONLY)]
    try:
        while True:
            try:
                fds.append(os.open(name, os.O_RDONLY, dir_fd=fds[-1]))
            except FileNotFoundError:
                break
        while len(fds) > 1:
            os.close(fds.pop())
            os.rmdir(name, dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)


@pytest.mark.parametrize("make", ["fifo", "huge"])
@pytest.mark.parametrize("name", ["policy.toml", "ceremony.toml", ".checkpoint"])
def test_a_workspace_file_swapped_for_a_fifo_or_a_huge_file_is_one_error_line(
        hostile_demo: Path, tmp_path: Path, name: str, make: str) -> None:
    """An insider who can write the workspace swaps a file every command reads. Before, a FIFO
    hung `status` for ever (policy.toml, .checkpoint) and a huge file ended in a MemoryError
    traceback (all three); `status` must say what is wrong instead."""
    ws = clone(hostile_demo, tmp_path / "ws")
    path = ws / name
    if make == "fifo":
        path.unlink()
        os.mkfifo(path)
    else:
        with open(path, "r+b") as f:
            f.truncate(6 << 30)
    result = subprocess.run([PYTHON, "-m", "console", "status"], capture_output=True, text=True,
                            env=_env({"CEREMONY_WORKSPACE": str(ws)}), cwd=ws, timeout=HANG,
                            check=False, preexec_fn=_limit_memory)
    assert_one_error(result, 1, name)


def test_a_keyset_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    """A quoted TOML key may hold "\\n"; the name pattern's `$` matched before a trailing newline,
    so policy.toml accepted keyset "demo-api\\n" (a folder name, a comment line in every
    gateway file)."""
    from console.config.policy import load_policy
    from console.errors import ConfigError

    policy = tmp_path / "policy.toml"
    policy.write_text('[keysets."demo-api\\n"]\nissuer = "https://x.example/a"\nalg = "ES256"\n'
                      'max_token_lifetime = "1h"\n', encoding="utf-8")
    with pytest.raises(ConfigError):
        load_policy(policy)
