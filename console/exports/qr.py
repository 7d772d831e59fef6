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

__all__ = ["codewords", "qr_svg", "qr_text"]

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
        qr.data_cache = codewords(qr)  # makeImpl maps these instead of computing its own
        qr.make(fit=False)
    return qr


def codewords(qr: qrcode.QRCode) -> list[int]:
    """The code's data and error-correction codewords, interleaved: what qrcode's own
    `util.create_data` returns for `qr.version` (a test compares them for every version and
    level), with the Reed–Solomon division done on integers, a row per byte, instead of
    qrcode's polynomial objects (three quarters of a code's cost)."""
    version, level = qr.version, qr.error_correction
    blocks = qrcode.base.rs_blocks(version, level)
    bits = qrcode.util.BitBuffer()
    for chunk in qr.data_list:
        bits.put(chunk.mode, 4)
        bits.put(len(chunk), qrcode.util.length_in_bits(chunk.mode, version))
        chunk.write(bits)
    capacity = sum(block.data_count for block in blocks)
    if len(bits) > capacity * 8:
        raise ExportError("QR text does not fit its code", "encode a digest")
    used = (len(bits) + min(capacity * 8 - len(bits), 4) + 7) // 8  # terminator, then whole
    data = [*bits.buffer, *[0] * (used - len(bits.buffer))][:used]
    data += [_PAD[i % 2] for i in range(capacity - used)]
    data_blocks: list[list[int]] = []
    ec_blocks: list[list[int]] = []
    offset = 0
    for block in blocks:
        chunk = data[offset:offset + block.data_count]
        offset += block.data_count
        data_blocks.append(chunk)
        ec_blocks.append(_remainder(chunk, block.total_count - block.data_count))
    return [*_interleave(data_blocks), *_interleave(ec_blocks)]


_PAD = (0xEC, 0x11)


def _interleave(blocks: list[list[int]]) -> list[int]:
    return [block[i] for i in range(max(map(len, blocks))) for block in blocks if i < len(block)]


def _remainder(data: list[int], size: int) -> list[int]:
    """`data` times x^size modulo the code's generator polynomial, over GF(256): the shift
    register of the standard, its `size` bytes held in one integer."""
    rows = _generator_rows(size)
    top = 8 * (size - 1)
    mask = (1 << 8 * size) - 1
    register = 0
    for byte in data:
        register = ((register << 8) & mask) ^ rows[byte ^ (register >> top)]
    return list(register.to_bytes(size, "big"))


_EXP = [0] * 512
_LOG = [0] * 256
_value = 1
for _power in range(255):
    _EXP[_power] = _EXP[_power + 255] = _value
    _LOG[_value] = _power
    _value <<= 1
    if _value & 0x100:
        _value ^= 0x11D  # x^8 + x^4 + x^3 + x^2 + 1, the QR field's polynomial


def _times(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _EXP[_LOG[a] + _LOG[b]]


@functools.cache
def _generator_rows(size: int) -> tuple[int, ...]:
    """For each byte value f, f times the generator (x - a^0)...(x - a^(size-1)) without its
    leading term, as one integer of `size` bytes."""
    generator = [1]
    for power in range(size):
        root = _EXP[power]
        shifted = zip([*generator, 0], [0, *generator], strict=True)  # g*x + g*root
        generator = [a ^ _times(b, root) for a, b in shifted]
    rows = []
    for factor in range(256):
        row = 0
        for coefficient in generator[1:]:
            row = (row << 8) | _times(factor, coefficient)
        rows.append(row)
    return tuple(rows)


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
