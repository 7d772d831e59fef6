"""`after_next_frame` calls back once, after a frame, and leaves the screen's other
subscriptions to the same signal (Textual's tooltip clearing) in place."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static

from console.tui.screens._base import after_next_frame


class _App(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("one word")


async def test_called_once_and_other_subscribers_still_hear_the_signal() -> None:
    app = _App()
    async with app.run_test() as pilot:
        screen = app.screen
        signal = screen.screen_layout_refresh_signal
        others: list[object] = []
        signal.subscribe(screen, others.append)  # as Textual's own tooltip clearer is
        calls: list[int] = []
        after_next_frame(screen, signal, lambda: calls.append(1))
        for text in ("two", "three", "four"):
            app.query_one(Static).update(text)
            screen.refresh(layout=True)
            await pilot.pause()
        assert calls == [1]
        heard = len(others)
        assert heard >= 1
        screen.refresh(layout=True)
        await pilot.pause()
        assert len(others) > heard  # still subscribed after the callback ran
