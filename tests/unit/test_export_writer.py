"""The export writer: never overwrites, never shows a half-written bundle folder, and writes a
MANIFEST that `sha256sum -c` accepts; plus the end-to-end export and the QR helpers."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from console.errors import ExportError, TargetLintError
from console.exports import (
    bundle_digest,
    export_bundle,
    public_jwk,
    qr_svg,
    qr_text,
    verify_bundle,
    write_bundle,
    write_signing_key,
)
from console.exports import writer as writer_module

NOW = datetime(2027, 1, 15, 10, 0, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
URI = "pkcs11:token=ceremony;id=%01;type=private"


class EcSigner:
    """A software ES256 BundleSigner: tests only (production signs in the HSM)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.alg = "ES256"
        self.jwk = public_jwk(self._key.public_key(), "ES256")
        self.kid = self.jwk["kid"]
        self.calls = 0

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.fixture
def signer() -> EcSigner:
    return EcSigner()


@pytest.fixture(scope="module")
def keys() -> list[dict[str, str]]:
    return [
        public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256") for _ in range(2)
    ]


def export(out: Path, signer: EcSigner, keys: list[dict[str, str]], seq: int = 1, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "issuer": "https://auth.example.com",
        "keyset": "demo-api",
        "keys": keys,
        "seq": seq,
        "prev": None,
        "now": NOW,
        "lifetime": timedelta(days=30),
        "consumers": ["envoy", "istio", "kong", "nginx", "aws-apigw"],
        "active_kid": keys[0]["kid"],
        "pkcs11_uri": URI,
    }
    args.update(kw)
    return export_bundle(out, signer, **args)  # type: ignore[arg-type]


def test_export_bundle_end_to_end(
    tmp_path: Path, signer: EcSigner, keys: list[dict[str, str]]
) -> None:
    out = tmp_path / "exports"
    result = export(out, signer, keys)
    folder = out / "demo-api" / "1"
    assert result.path == folder
    token = (folder / "jwks.jwt").read_bytes()
    assert result.sha256 == bundle_digest(token)
    v = verify_bundle(token, trust=signer.jwk, now=NOW)
    assert [k["kid"] for k in v.keys] == [k["kid"] for k in keys]
    on_disk = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert on_disk == sorted(result.files)
    assert {"jwks.json", "signer.json", "envoy-jwt-authn.yaml", "kong-deck.yaml", "README.txt",
            "MANIFEST.sha256"} <= set(on_disk)  # fmt: skip
    # The QR of the bundle digest is derived from jwks.jwt: it lives in the transcript, not here.
    assert not [n for n in on_disk if n.endswith(".svg")]
    assert not [p for p in (out / "demo-api").iterdir() if p.name != "1"]  # no staging left
    # sha256sum, an outside tool, checks the manifest.
    run = subprocess.run(["sha256sum", "-c", "--strict", "MANIFEST.sha256"], cwd=folder,
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count(": OK") == len(result.files) - 1
    # ... and notices a change.
    (folder / "jwks.json").write_text("{}")
    run = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=folder,
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 1 and "jwks.json: FAILED" in run.stdout


def test_files_claim_lists_every_other_file_checked_by_jwcrypto_and_hashlib(
    tmp_path: Path, signer: EcSigner, keys: list[dict[str, str]]
) -> None:
    """Independent of our verifier: jwcrypto checks the JWS, hashlib each file it lists."""
    from jwcrypto import jwk as jwcrypto_jwk
    from jwcrypto import jws as jwcrypto_jws

    result = export(tmp_path, signer, keys, consumers=["envoy", "istio", "kong", "nginx",
                                                       "apache-openidc", "generic"])
    folder = result.path
    token = jwcrypto_jws.JWS()
    token.allowed_algs = ["ES256"]
    token.deserialize((folder / "jwks.jwt").read_text(), key=jwcrypto_jwk.JWK(**signer.jwk))
    files = json.loads(token.payload)["files"]
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert set(files) == on_disk - {"jwks.jwt", "MANIFEST.sha256"}
    assert {"README.txt", "apache-openidc.conf", f"keys/{keys[0]['kid']}.pem"} <= set(files)
    for name, digest in files.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    # The manifest is exactly the one the signed list and the bundle's digest make.
    listed = {**files, "jwks.jwt": result.sha256}
    assert (folder / "MANIFEST.sha256").read_text() == "".join(
        f"{listed[n]}  {n}\n" for n in sorted(listed))


def test_readme_commands_run_from_the_folder(tmp_path: Path, signer: EcSigner,
                                              keys: list[dict[str, str]]) -> None:
    """The verification commands README.txt prints work, typed as printed, in that folder."""
    exports = tmp_path / "exports"
    write_signing_key(exports / "bundle-signing-key.jwk", signer.jwk)
    now = datetime.now(UTC).replace(microsecond=0)
    first = export(exports, signer, keys[:1], now=now)
    second = export(exports, signer, keys, seq=2, prev=first.sha256, now=now)
    for folder, expect in ((first.path, None), (second.path, "--previous ../1/jwks.jwt")):
        readme = (folder / "README.txt").read_text()
        commands = [line.strip() for line in readme.splitlines()
                    if line.startswith("  ceremony ") or line.startswith("  sha256sum ")]
        assert len(commands) == 2, readme
        assert (expect in commands[0]) if expect else ("--previous" not in commands[0])
        for command in commands:
            argv = shlex.split(command)
            if argv[0] == "ceremony":
                argv = [sys.executable, "-m", "console", *argv[1:]]
            run = subprocess.run(argv, cwd=folder, capture_output=True, text=True, check=False,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
            assert run.returncode == 0, (command, run.stdout, run.stderr)
    assert "  added   " + keys[1]["kid"] in run_verify(second.path, "../1/jwks.jwt")


def run_verify(folder: Path, previous: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "console", "verify", "bundle", "jwks.jwt", "--trust",
         "../../bundle-signing-key.jwk", "--previous", previous],
        cwd=folder, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_second_bundle_chains(tmp_path: Path, signer: EcSigner, keys: list[dict[str, str]]) -> None:
    first = export(tmp_path, signer, keys[:1])
    second = export(tmp_path, signer, keys, seq=2, prev=first.sha256, now=NOW + timedelta(days=1))
    token = (second.path / "jwks.jwt").read_bytes()
    previous = (first.path / "jwks.jwt").read_bytes()
    assert (
        verify_bundle(token, trust=signer.jwk, previous=previous, now=NOW + timedelta(days=1)).seq
        == 2
    )


def test_never_overwrites(tmp_path: Path, signer: EcSigner, keys: list[dict[str, str]]) -> None:
    out = tmp_path / "exports"
    export(out, signer, keys)
    before = {p: p.read_bytes() for p in (out / "demo-api" / "1").rglob("*") if p.is_file()}
    calls = signer.calls
    with pytest.raises(ExportError) as e:
        export(out, signer, keys)
    assert e.value.user_message().startswith(f"{out}/demo-api/1 already exists — ")
    assert signer.calls == calls  # refused before any signature
    assert {p: p.read_bytes() for p in (out / "demo-api" / "1").rglob("*") if p.is_file()} == before
    with pytest.raises(ExportError, match="already exists"):
        write_bundle(out, "demo-api", 1, {"jwks.jwt": b"x"})


def test_relative_out_root_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_bundle(Path("exports"), "demo-api", 3, {"jwks.jwt": b"x"})
    with pytest.raises(ExportError) as e:
        write_bundle(Path("exports"), "demo-api", 3, {"jwks.jwt": b"y"})
    assert e.value.user_message().startswith("exports/demo-api/3 already exists — ")


def test_even_an_empty_existing_folder_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "demo-api" / "2").mkdir(parents=True)
    with pytest.raises(ExportError, match="already exists"):
        write_bundle(tmp_path, "demo-api", 2, {"jwks.jwt": b"x"})


def test_crash_between_files_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = writer_module._write_staged_file
    written: list[str] = []

    def crash_on_third(path: Path, data: bytes) -> None:
        if len(written) == 2:
            raise OSError(5, "Input/output error (injected)")
        real(path, data)
        written.append(path.name)

    monkeypatch.setattr(writer_module, "_write_staged_file", crash_on_third)
    files = {"a.json": b"1", "b.json": b"2", "jwks.jwt": b"3", "keys/k.pem": b"4"}
    with pytest.raises(OSError, match="injected"):
        write_bundle(tmp_path, "demo-api", 1, files)
    assert written == ["a.json", "b.json"]
    assert list((tmp_path / "demo-api").iterdir()) == []  # no bundle folder, no staging folder
    monkeypatch.setattr(writer_module, "_write_staged_file", real)
    result = write_bundle(tmp_path, "demo-api", 1, files)  # the same seq is still free
    assert result.path.is_dir()


def test_staging_is_hidden_until_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the moment of the last file write, readers see only a dot-folder, never demo-api/1."""
    real = writer_module._write_staged_file
    seen: list[list[str]] = []

    def spy(path: Path, data: bytes) -> None:
        real(path, data)
        seen.append(sorted(p.name for p in (tmp_path / "demo-api").iterdir()))

    monkeypatch.setattr(writer_module, "_write_staged_file", spy)
    write_bundle(tmp_path, "demo-api", 1, {"jwks.jwt": b"3", "x.json": b"1"})
    assert seen and all(len(names) == 1 and names[0].startswith(".partial-1-") for names in seen)
    assert sorted(p.name for p in (tmp_path / "demo-api").iterdir()) == ["1"]


def test_lint_failure_writes_nothing_and_signs_nothing(
    tmp_path: Path, signer: EcSigner, keys: list[dict[str, str]]
) -> None:
    with pytest.raises(TargetLintError, match="APIM"):
        export(tmp_path, signer, keys, consumers=["envoy", "apim"])
    assert signer.calls == 0
    assert not (tmp_path / "demo-api").exists()


@pytest.mark.parametrize(
    "files",
    [
        {"jwks.jwt": b"x", "../evil": b"x"},
        {"jwks.jwt": b"x", "/etc/passwd": b"x"},
        {"jwks.jwt": b"x", "MANIFEST.sha256": b"x"},
        {"jwks.json": b"x"},
    ],
    ids=["dotdot", "absolute", "manifest given", "no jwks.jwt"],
)
def test_write_bundle_refuses_bad_names(tmp_path: Path, files: dict[str, bytes]) -> None:
    with pytest.raises(ExportError):
        write_bundle(tmp_path, "demo-api", 1, files)
    assert not (tmp_path / "demo-api" / "1").exists()


def test_write_signing_key(tmp_path: Path, signer: EcSigner) -> None:
    path = tmp_path / "exports" / "bundle-signing-key.jwk"
    assert write_signing_key(path, signer.jwk) == signer.kid
    assert json.loads(path.read_text()) == signer.jwk
    with pytest.raises(ExportError, match="already exists"):
        write_signing_key(path, signer.jwk)
    with pytest.raises(ExportError, match="private member 'd'"):
        write_signing_key(tmp_path / "other.jwk", {**signer.jwk, "d": "AAAA"})
    assert not (tmp_path / "other.jwk").exists()
    assert [p.name for p in path.parent.iterdir()] == ["bundle-signing-key.jwk"]


def test_qr_svg_and_text() -> None:
    digest = "9f" * 32
    svg = qr_svg(digest)
    assert svg.startswith("<svg") and "<path" in svg
    import xml.etree.ElementTree as ET

    ET.fromstring(svg)
    text = qr_text(digest)
    lines = text.splitlines()
    assert len(lines) > 10 and len({len(line) for line in lines}) == 1
    assert set(text) <= {" ", "▀", "▄", "█", "\n"}
    assert qr_text("other") != qr_text(digest)
    with pytest.raises(ExportError):
        qr_svg("")


def test_exports_import_no_hsm_or_ui() -> None:
    """console.exports (and the verifier) must load on an auditor's machine: no HSM, no UI."""
    code = (
        "import sys, console.exports, console.exports.verify_bundle;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('textual','rich','pkcs11')"
        " or m.startswith('console.hsm')];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
