"""A QR code drawn with half-block characters (console.exports.qr.qr_text, imported when the
first code is drawn: the console paints before `qrcode` loads)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class QrCode(Static):
    DEFAULT_CSS = """
    QrCode { width: auto; height: auto; }
    """

    def __init__(self, payload: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.payload = payload

    def on_mount(self) -> None:
        self.show(self.payload)

    def show(self, payload: str) -> None:
        from console.exports.qr import qr_text  # qrcode loads with the first code drawn

        self.payload = payload
        self.update(Text(qr_text(payload), no_wrap=True) if payload else Text(""))
