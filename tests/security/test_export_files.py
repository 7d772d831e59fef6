"""Attacks on an export folder: what `ceremony export` and `ceremony verify bundle` do with it.

Each attack works on its own copy of one demo workspace (genesis, then a quarterly rotation:
bundles #1 and #2 of demo-api, served to Envoy, Istio, Kong and NGINX), through the real CLI in a
subprocess. Before the bundle signed its folder, the first attack passed `sha256sum -c`,
`ceremony export` and `ceremony verify bundle`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from console.exports import public_jwk
from tests.integration.ceremony_helpers import assert_one_error, cli, clone, make_demo

pytestmark = pytest.mark.hsm

SECRET = "officer passphrase: correct horse battery staple\n"


@pytest.fixture(scope="module")
def export_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("export-attacks") / "demo")


@pytest.fixture
def demo(export_demo: Path, tmp_path: Path) -> Path:
    return clone(export_demo, tmp_path / "ws")


def latest(ws: Path) -> Path:
    folders = [p for p in (ws / "exports" / "demo-api").iterdir() if p.name.isdigit()]
    return max(folders, key=lambda p: int(p.name))


def tree(path: Path) -> dict[str, bytes]:
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def rewrite_manifest(folder: Path) -> None:
    """What an attacker does after changing files: a MANIFEST that matches them again."""
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.is_file() and p.name != "MANIFEST.sha256")
    (folder / "MANIFEST.sha256").write_text("".join(
        f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names))


def export(ws: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return cli(ws, "export", "--keyset", "demo-api", "--out", str(out))


def verify(folder: Path) -> subprocess.CompletedProcess[str]:
    return cli(None, "verify", "bundle", "jwks.jwt", "--trust", "../../bundle-signing-key.jwk",
               cwd=folder)


def test_an_untouched_bundle_exports_and_its_copy_verifies(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"  # folders export creates, each opened without following links
    result = export(demo, out)
    assert result.returncode == 0, result.stderr
    source = latest(demo)
    copy = out / "demo-api" / source.name
    assert Path(result.stdout.strip()) == copy
    assert tree(copy) == tree(source)
    assert (out / "bundle-signing-key.jwk").read_bytes() == \
        (demo / "exports" / "bundle-signing-key.jwk").read_bytes()
    checked = verify(copy)
    assert checked.returncode == 0, checked.stderr
    assert "each as signed" in checked.stdout
    sums = subprocess.run(["sha256sum", "-c", "--strict", "MANIFEST.sha256"], cwd=copy,
                          capture_output=True, text=True, check=False)
    assert sums.returncode == 0, sums.stdout + sums.stderr


def test_a_bundle_checked_without_the_operators_keyset_says_so(demo: Path) -> None:
    """One key signs every keyset's bundles, so another keyset's genuine folder verifies as
    well: without --keyset and --issuer from the operator's own configuration, the summary
    says they were taken from the bundle; with them, a bundle of another keyset is refused."""
    folder = latest(demo)
    claims = json.loads((folder / "jwks.json").read_text())
    assert claims["keys"]
    bare = verify(folder)
    assert bare.returncode == 0, bare.stderr
    assert "! keyset and issuer taken from the bundle itself" in bare.stdout
    assert "--keyset demo-api" in bare.stdout
    issuer = next(line for line in bare.stdout.splitlines() if "--issuer" in line)
    iss = issuer.split("--issuer ", 1)[1].split(" if that", 1)[0]
    pinned = cli(None, "verify", "bundle", "jwks.jwt", "--trust", "../../bundle-signing-key.jwk",
                 "--keyset", "demo-api", "--issuer", iss, cwd=folder)
    assert pinned.returncode == 0, pinned.stderr
    assert "taken from the bundle" not in pinned.stdout
    other = cli(None, "verify", "bundle", "jwks.jwt", "--trust", "../../bundle-signing-key.jwk",
                "--keyset", "payments", "--issuer", iss, cwd=folder)
    assert other.returncode != 0 and "payments" in other.stderr


def add_key(jwks: dict[str, Any], key: dict[str, str]) -> dict[str, Any]:
    return {"keys": [*jwks["keys"], key]}


def test_an_extra_key_in_three_gateway_files_with_a_rewritten_manifest_is_named(
        demo: Path, tmp_path: Path) -> None:
    folder = latest(demo)
    extra = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")
    for name in ("jwks.json", "nginx-jwks.json"):
        path = folder / name
        path.write_text(json.dumps(add_key(json.loads(path.read_text()), extra), indent=2))
    envoy = folder / "envoy-jwt-authn.yaml"
    doc = yaml.safe_load(envoy.read_text())
    provider = doc["providers"]["demo-api"]["local_jwks"]
    provider["inline_string"] = json.dumps(add_key(json.loads(provider["inline_string"]), extra))
    envoy.write_text(yaml.safe_dump(doc))
    rewrite_manifest(folder)
    sums = subprocess.run(["sha256sum", "-c", "--strict", "MANIFEST.sha256"], cwd=folder,
                          capture_output=True, text=True, check=False)
    assert sums.returncode == 0  # the attack that used to pass: the manifest alone proves nothing

    out = tmp_path / "out"
    line = assert_one_error(export(demo, out), 1, "export of demo-api refused")
    for name in ("envoy-jwt-authn.yaml", "jwks.json", "nginx-jwks.json", "MANIFEST.sha256"):
        assert name in line, line
    assert "folder: envoy-jwt-authn.yaml differs from the signed list (and 3 more: " \
        "jwks.json, nginx-jwks.json, MANIFEST.sha256)" in line, line
    assert not (out / "demo-api").exists() or not any((out / "demo-api").iterdir())

    # verify bundle: the error line names the first file and the others; the output lists
    # each one, one line per file.
    checked = verify(folder)
    line = assert_one_error(checked, 1, "folder: envoy-jwt-authn.yaml differs")
    for name in ("jwks.json", "nginx-jwks.json", "MANIFEST.sha256"):
        assert name in line, line
    assert checked.stdout.splitlines() == [
        "✗ envoy-jwt-authn.yaml differs from the signed list",
        "✗ jwks.json differs from the signed list",
        "✗ nginx-jwks.json differs from the signed list",
        "✗ MANIFEST.sha256 is not the manifest of the signed list",
    ], checked.stdout


def test_a_symlinked_pem_to_a_secret_is_refused_and_the_secret_never_copied(
        demo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    folder = latest(demo)
    (folder / "keys" / "extra.pem").symlink_to(secret)
    rewrite_manifest(folder)
    out = tmp_path / "out"
    line = assert_one_error(export(demo, out), 1, "keys/extra.pem is a symbolic link")
    assert "export of demo-api refused" in line
    copied = b"".join(tree(out).values())
    assert SECRET.encode() not in copied
    assert_one_error(verify(folder), 1, "keys/extra.pem is a symbolic link")


def test_out_as_a_symlink_is_refused_and_nothing_is_written_through_it(
        demo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "out"
    link.symlink_to(elsewhere, target_is_directory=True)
    assert_one_error(export(demo, link), 1, "is a symbolic link")
    assert list(elsewhere.iterdir()) == []
    # A link where export would create the keyset folder is refused the same way.
    out = tmp_path / "real-out"
    out.mkdir()
    (out / "demo-api").symlink_to(elsewhere, target_is_directory=True)
    assert_one_error(export(demo, out), 1, "is a symbolic link or not a folder")
    assert list(elsewhere.iterdir()) == []


def make_fifo(path: Path) -> str:
    os.mkfifo(path)
    return "a FIFO"


def make_socket(path: Path) -> str:
    # Bound under a short name (AF_UNIX paths are limited to ~108 bytes), then moved in place:
    # the socket file stays after close, and a rename keeps its type.
    short = Path(tempfile.mkdtemp(prefix="sock", dir="/tmp"))
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(short / "s"))
        os.rename(short / "s", path)
    finally:
        shutil.rmtree(short, ignore_errors=True)
    return "a socket"


def make_device(path: Path) -> str:
    """A character device like /dev/null (1, 3); creating one needs CAP_MKNOD."""
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod of a character device is not permitted here")
    return "a device"


@pytest.mark.parametrize("make", [make_fifo, make_socket, make_device],
                         ids=["fifo", "socket", "device"])
def test_a_special_file_in_the_folder_is_refused_without_hanging(
        demo: Path, tmp_path: Path, make: Callable[[Path], str]) -> None:
    folder = latest(demo)
    kind = make(folder / "keys" / "extra.pem")
    out = tmp_path / "out"
    refusal = f"keys/extra.pem is not a regular file ({kind})"
    assert "export of demo-api refused" in assert_one_error(export(demo, out), 1, refusal)
    assert tree(out) == {}
    assert_one_error(verify(folder), 1, refusal)


def test_an_existing_target_is_never_overwritten(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert export(demo, out).returncode == 0
    before = tree(out)
    assert_one_error(export(demo, out), 1, "already exists")
    assert tree(out) == before


@pytest.mark.parametrize("swap", ["another key", "the recorded kid on another key", "deleted"])
def test_a_swapped_pinned_key_file_is_flagged_and_never_handed_on(
        demo: Path, tmp_path: Path, swap: str) -> None:
    """The insider replaces exports/bundle-signing-key.jwk (and can forge bundles with their
    key): status says so, and an export copy carries the key the ledger records beside it —
    the key the README's verify command trusts — not the file on disk."""
    from jwcrypto import jwk, jws

    path = demo / "exports" / "bundle-signing-key.jwk"
    recorded = json.loads(path.read_text())
    if swap == "deleted":
        path.unlink()
    else:
        intruder = jwk.JWK.from_pyca(ec.generate_private_key(ec.SECP256R1()).public_key())
        forged = json.loads(intruder.export_public()) | {"alg": "ES256", "use": "sig"}
        forged["kid"] = recorded["kid"] if swap.startswith("the recorded") else \
            intruder.thumbprint()
        path.write_text(json.dumps(forged))

    shown = cli(demo, "status")
    assert shown.returncode == 0, shown.stderr
    assert "exports/bundle-signing-key.jwk is" in shown.stdout + shown.stderr
    assert "do not pin from it" in shown.stdout + shown.stderr

    out = tmp_path / "out"
    result = export(demo, out)
    assert result.returncode == 0, result.stderr
    handed = json.loads((out / "bundle-signing-key.jwk").read_text())
    assert handed == recorded
    # Checked by a library we did not write: the copied bundle verifies with the handed key.
    copied = max((out / "demo-api").iterdir(), key=lambda p: int(p.name))
    token = jws.JWS()
    token.deserialize((copied / "jwks.jwt").read_text().strip())
    token.verify(jwk.JWK(**handed))
    assert verify(copied).returncode == 0
