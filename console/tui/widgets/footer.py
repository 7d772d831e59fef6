"""The footer: Textual's, recomposed only when the keys it shows change.

Textual's `Footer` recomposes (mounting a widget per key) on every "bindings updated" signal,
which fires on each focus change, mount and screen switch, mostly with the same keys: at launch
that was four recompositions before the dashboard's data, each restyling every key. This one
remembers what it showed (key, label, enabled, tooltip, group of each shown binding) and skips a
recomposition that would draw the same keys.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

Shown = tuple[tuple[str, str, bool, str, str], ...]


def shown_keys(screen: Screen[object]) -> Shown:
    """What the footer draws for `screen`: its shown bindings and the command palette's."""
    app = screen.app
    keys: list[tuple[str, str, bool, str, str]] = []
    for key, (_node, binding, enabled, tooltip) in screen.active_bindings.items():
        if binding.show or key == app.COMMAND_PALETTE_BINDING:
            keys.append(_shown(binding, enabled, tooltip))
    return tuple(keys)


def _shown(binding: Binding, enabled: bool, tooltip: str) -> tuple[str, str, bool, str, str]:
    group = binding.group.description if binding.group is not None else ""
    return (binding.key, binding.description, enabled, tooltip, group)


class ConsoleFooter(Footer):
    """`Footer` without the recompositions that change nothing (see the module docstring)."""

    _shown: Shown | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            shown = shown_keys(screen)
            if shown != self._shown:
                self._shown = shown
                self.call_after_refresh(self.recompose)
