"""QR codes of digests: SVG for files and transcripts, half-block text for the TUI and CLI.

`qrcode` computes the module matrix (pure Python, no Pillow); the SVG is written here from that
matrix: one `<path>` of run-length rectangles, one per horizontal run of dark modules. (qrcode's
SVG image factories draw every module as its own element through ElementTree, which cost more
than encoding the code.)
"""

from __future__ import annotations

import functools
import io

import qrcode
import qrcode.constants

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
    # The smallest version depends only on the data's segments (mode and length of each);
    # finding it builds the bit stream once more, a quarter of a code's cost, for digests that
    # all have the same shape.
    shape = tuple((chunk.mode, len(chunk)) for chunk in qr.data_list)
    known = _fitted.get(shape)
    if known is None:
        qr.make(fit=True)
        if len(_fitted) < _FITTED_SHAPES:
            _fitted[shape] = qr.version
    else:
        qr.version = known
        qr.make(fit=False)
    return qr


_FITTED_SHAPES = 256
_fitted: dict[tuple[tuple[int, int], ...], int] = {}
"""Version chosen by qrcode's own fit, per data shape (entries are only ever added)."""


_MODULE_MM = 0.8
"""Printed size of one module: a 33-module code with its quiet zone is 33 mm wide."""


@functools.lru_cache(maxsize=1024)  # a few kB each: every bundle code of a big ceremony
def qr_svg(text: str) -> str:
    """An SVG document (one path) encoding `text`.

    Raises:
        ExportError: the text is empty or too long.
    """
    matrix = _qr(text, 4).get_matrix()  # quiet zone included
    size = len(matrix)
    runs: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < size:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < size and row[x]:
                x += 1
            runs.append(f"M{start},{y}h{x - start}v1h-{x - start}z")
    side = f"{size * _MODULE_MM:g}mm"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{side}" '
            f'height="{side}" viewBox="0 0 {size} {size}" shape-rendering="crispEdges">'
            f'<path fill="#000" d="{"".join(runs)}"/></svg>')


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
