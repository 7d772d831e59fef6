"""Our QR codes decode with an independent reader (zbar), when it is installed.

The codes use a fixed mask (see console/exports/qr.py); this proves real scanners read them:
the SVG is rasterised with rsvg-convert and decoded with zbarimg, tools we did not write.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from console.exports.qr import qr_svg

TOOLS = ("rsvg-convert", "zbarimg")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="rsvg-convert and zbarimg are not installed (apt: librsvg2-bin zbar-tools)",
)

PAYLOADS = [
    "e11852f6dca908ab156f424e49dc5a31e98c1824fe05f75d77522f01626fdb9d",
    "plan-sha256:16d0dde7af43b07f663cc60fc2ee596908538a320a7f5db8cdf7a14936d1149f",
    "demo/ceremony-ledger/fc1b424c-9a1d-4bb4-b9e4-cb1e8a7b9c29\n57\n"
    "FxM3pShN4weXx94FW7/s1jQRlpMD022JVDOZowFIBpI=\n\n"
    "— alice sr3IT/l4f28VzsUtXnSB0mJ05Xb4pIvCTjdSZOpyKZLGrBR2dqRMxo6APZRN3Dhe+"
    "ZVDcbHUQQv05GeEDWQIR5zMOg0=\n",
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=["bundle", "plan", "checkpoint"])
def test_qr_svg_decodes_with_zbar(payload: str, tmp_path: Path) -> None:
    svg, png = tmp_path / "q.svg", tmp_path / "q.png"
    svg.write_text(qr_svg(payload), encoding="utf-8")
    subprocess.run(["rsvg-convert", "-w", "800", "-b", "white", str(svg), "-o", str(png)],
                   check=True, capture_output=True)
    out = subprocess.run(["zbarimg", "-q", "--raw", str(png)], capture_output=True, check=True)
    assert out.stdout.decode("utf-8").removesuffix("\n") == payload
