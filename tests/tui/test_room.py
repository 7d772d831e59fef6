"""Issue 15 in the TUI, by keys: the QR dialog says how to close it, and the command palette
finds every screen's actions by name. Runs on the committed snapshot workspace (no HSM)."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Label, Static

from console.tui.app import SCREENS_BY_KEY, screen_bindings, screen_class
from console.tui.dialogs.qr import QrDialog
from console.tui.widgets.footer import ConsoleFooter
from tests.tui.conftest import settle
from tests.tui.snapshot_app import snapshot_app


async def test_the_qr_dialog_says_how_to_close_it(snapshot_workspace: Path) -> None:
    app = snapshot_app(snapshot_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in ("e", "k"):
            await pilot.press(key)
            await settle(pilot)
        assert isinstance(app.screen, QrDialog)
        title = app.screen.query_one("#qr-title", Label)
        assert "esc, enter or q closes" in str(title.render())
        assert title.region.y >= 0 and title.region.bottom <= 24  # on screen at 80x24
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, QrDialog)


async def test_exports_list_kids_added_and_removed_and_the_whole_thumbprint(
        snapshot_workspace: Path) -> None:
    app = snapshot_app(snapshot_workspace)
    ws = app.backend.ws  # type: ignore[attr-defined]
    recorded = [e.data for e in ws.ledger.entries_of_type("bundle.exported")]
    first, second = ([str(k) for k in d["kids"]] for d in recorded[:2])
    signing = app.backend.signing_key()  # type: ignore[attr-defined]
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        head = str(app.screen.query_one("#signing-key", Static).render())
        assert str(signing["kid"]) in head.replace("\n", "")
        changes = str(app.screen.query_one("#bundle-changes", Static).render())
        assert changes.startswith("#2 since #1:")
        for kid in set(second) - set(first):
            assert f"+ added   {kid}" in changes
        for kid in set(first) - set(second):
            assert f"− removed {kid}" in changes
        assert set(second) != set(first)
        await pilot.press("down")
        await settle(pilot)
        changes = str(app.screen.query_one("#bundle-changes", Static).render())
        assert changes.startswith("#1 is the first bundle of demo-api")
        assert all(f"+ added   {kid}" in changes for kid in first)


async def _palette(pilot: Pilot[None], text: str) -> list[str]:
    """Open the command palette, type `text`, and read the names it offers."""
    await pilot.press("ctrl+p")
    await settle(pilot)
    palette = pilot.app.screen
    assert isinstance(palette, CommandPalette)
    await pilot.press(*text)
    for _ in range(20):  # the search runs in a worker, results come in batches
        await pilot.pause(0.05)
    results = palette.query_one(CommandList)
    names = [str(results.get_option_at_index(i).prompt).split("\n")[0]
             for i in range(results.option_count)]
    return names


async def test_the_palette_finds_every_action_of_every_screen(snapshot_workspace: Path) -> None:
    app = snapshot_app(snapshot_workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert app.current_mode == "dashboard"
        names = {c.title for c in app.get_system_commands(app.screen)}
        for _key, mode, title in SCREENS_BY_KEY:
            for binding in screen_bindings(screen_class(mode)):
                assert f"{title}: {binding.description}" in names
        assert {"Ceremony: Resume", "Ceremony: Plan", "Ceremony: Abort", "Ledger: Verify tree",
                "Exports: Signing key QR", "Dashboard: Open plan"} <= names
        # By keys, from the dashboard: "resume" finds the Ceremony screen's action, and
        # choosing it goes there.
        assert "Ceremony: Resume" in await _palette(pilot, "resume")
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_mode == "ceremony"
        await pilot.press("d")
        await settle(pilot)
        assert "Ceremony: Plan" in await _palette(pilot, "plan")


async def test_at_80x24_the_footer_keeps_every_screen_key_and_help(
        snapshot_workspace: Path) -> None:
    """The footer is one line of text (widgets/footer.py): every screen key, quit and the whole
    `? Help` are drawn before the palette's key, on every screen."""
    app = snapshot_app(snapshot_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for screen_key in ("d", "c", "l", "e", "o", "h"):
            await pilot.press(screen_key)
            await settle(pilot)
            footer = app.screen.query_one(ConsoleFooter)
            line = footer.line(footer.size.width).plain
            assert len(line) == 80, line
            left = line[:line.index("▏^p")]
            assert "dcleoh screens" in left and "^q Quit" in left, (app.current_mode, line)
            assert "? Help" in left, (app.current_mode, line)


async def test_a_click_on_a_footer_key_presses_it(snapshot_workspace: Path) -> None:
    app = snapshot_app(snapshot_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        footer = app.screen.query_one(ConsoleFooter)
        line = footer.line(footer.size.width).plain
        await pilot.click(ConsoleFooter, offset=(line.index("dcleoh") + 2, 0))  # the l
        await settle(pilot)
        assert app.current_mode == "ledger"


async def test_at_80x24_the_dashboard_shows_the_whole_signing_thumbprint(
        snapshot_workspace: Path) -> None:
    app = snapshot_app(snapshot_workspace)
    kid = str(app.backend.signing_key()["kid"])  # type: ignore[attr-defined]
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        shown = app.screen.query_one("#dash-signing-key", Static)
        assert kid in str(shown.render())
        width = shown.content_region.width
        assert 0 < width < len(kid)  # it has to wrap at 80 columns ...
        rows_for_kid = -(-len(kid) // width)
        assert shown.content_region.height >= 1 + rows_for_kid  # ... and it does, whole
        assert shown.region.bottom <= 24
