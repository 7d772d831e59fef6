"""QR codes of digests: SVG for files and transcripts, half-block text for the TUI and CLI.

Pure `qrcode` (its SVG factory uses the standard library's ElementTree): no Pillow.
"""

from __future__ import annotations

import functools
import io

import qrcode
import qrcode.constants
import qrcode.image.svg

from console.errors import ExportError

__all__ = ["qr_svg", "qr_text"]

FIXED_MASK = 2  # (column mod 3) == 0: no long runs along rows for the low-penalty layouts here
_MAX_TEXT = 512  # digests and thumbprint URIs; anything longer is a caller bug


def _qr(text: str, border: int) -> qrcode.QRCode:
    if not text or len(text) > _MAX_TEXT:
        raise ExportError(f"QR text must be 1–{_MAX_TEXT} characters", "encode a digest")
    # A fixed mask: every mask is valid for decoders, and scoring all eight (qrcode's default)
    # is most of the cost of a code, paid for every exported bundle.
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=border,
                       box_size=8, mask_pattern=FIXED_MASK)
    qr.add_data(text)
    qr.make(fit=True)
    return qr


@functools.lru_cache(maxsize=256)  # ~16 kB each; a big ceremony reuses its bundle codes
def qr_svg(text: str) -> str:
    """An SVG document (one path) encoding `text`.

    Raises:
        ExportError: the text is empty or too long.
    """
    image = _qr(text, 4).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    data: bytes | str = image.to_string(encoding="unicode")
    return data.decode("utf-8") if isinstance(data, bytes) else data


def qr_text(text: str, *, invert: bool = True) -> str:
    """Terminal rendering with half blocks (two modules per line); `invert` suits dark themes.

    Raises:
        ExportError: the text is empty or too long.
    """
    out = io.StringIO()
    # A 2-module quiet zone instead of 4 saves terminal rows; scanners cope on a screen.
    _qr(text, 2).print_ascii(out=out, invert=invert)
    # print_ascii draws light modules as cp437 255 (no-break space); terminals want a space.
    return out.getvalue().replace("\xa0", " ")
