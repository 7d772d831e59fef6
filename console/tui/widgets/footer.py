"""The footer: the keys of the screen, the screen keys as one group, help, quit and the palette,
drawn as one line of one widget.

Textual's `Footer` mounts a widget per key (with its own stylesheet rules and watchers) and
recomposes them on every "bindings updated" signal: at launch it cost about as much as the rest
of the dashboard's first frame (issue 16). This one draws the same line (`^q Quit  dcleoh
screens ? Help … ▏^p palette`, the grouped keys together, the palette's key at the right) as
text, redraws only when the keys it shows change, and a click on a key presses it, as on
Textual's (hover highlights and tooltips are not drawn).
"""

from __future__ import annotations

from itertools import groupby
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget

Shown = tuple[tuple[str, str, str, bool, str, bool], ...]
"""(key, key display, description, enabled, group description, group compact) per key."""


def shown_keys(screen: Screen[object]) -> tuple[Shown, tuple[str, str, str, bool] | None]:
    """What the footer draws for `screen`: its shown bindings (one per action, in order) and
    the command palette's key (key, key display, description, enabled), if any."""
    app = screen.app
    keys: list[tuple[str, str, str, bool, str, bool]] = []
    actions: set[str] = set()
    palette: tuple[str, str, str, bool] | None = None
    for key, (_node, binding, enabled, _tooltip) in screen.active_bindings.items():
        if key == app.COMMAND_PALETTE_BINDING and app.ENABLE_COMMAND_PALETTE:
            palette = (binding.key, app.get_key_display(binding), binding.description, enabled)
        elif binding.show and binding.action not in actions:
            actions.add(binding.action)
            keys.append(_shown(binding, app.get_key_display(binding), enabled))
    return tuple(keys), palette


def _shown(binding: Binding, display: str, enabled: bool) -> tuple[str, str, str, bool, str,
                                                                    bool]:
    group = binding.group
    return (binding.key, display, binding.description, enabled,
            group.description if group is not None else "", bool(group and group.compact))


class ConsoleFooter(Widget):
    """One line of keys (see the module docstring)."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"console-footer--key",
                                             "console-footer--description",
                                             "console-footer--divider"}
    DEFAULT_CSS = """
    ConsoleFooter {
        dock: bottom; height: 1;
        color: $footer-foreground; background: $footer-background;
        .console-footer--key {
            color: $footer-key-foreground; background: $footer-key-background;
            text-style: bold;
        }
        .console-footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .console-footer--divider { color: $foreground 20%; }
    }
    """

    _shown: tuple[Shown, tuple[str, str, str, bool] | None] = ((), None)

    def on_mount(self) -> None:
        self._shown = shown_keys(self.screen)
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if screen is self.screen:
            shown = shown_keys(screen)
            if shown != self._shown:
                self._shown = shown
                self.refresh()

    _spans: tuple[tuple[int, int, str, bool], ...] = ()
    """Where each key was drawn (start, end, key, enabled), for clicks."""

    def _key(self, text: Text, key: str, display: str, description: str, enabled: bool,
             spans: list[tuple[int, int, str, bool]]) -> None:
        key_style = self.get_component_rich_style("console-footer--key")
        description_style = self.get_component_rich_style("console-footer--description")
        if not enabled:
            key_style += Style(dim=True)
            description_style += Style(dim=True)
        start = text.cell_len
        text.append(display, style=key_style)
        if description:
            text.append(" " + description, style=description_style)
        spans.append((start, text.cell_len, key, enabled))

    def on_click(self, event: events.Click) -> None:
        """A click on a key presses it, as on Textual's footer (a disabled one rings)."""
        for start, end, key, enabled in self._spans:
            if start <= event.x < end:
                if enabled:
                    self.app.simulate_key(key)
                else:
                    self.app.bell()
                return

    def line(self, width: int) -> Text:
        """The footer's line at `width` columns."""
        keys, palette = self._shown
        spans: list[tuple[int, int, str, bool]] = []
        left = Text(no_wrap=True, overflow="crop", end="")
        for (group, compact), items in groupby(keys, lambda k: (k[4], k[5])):
            grouped = list(items)
            if group and len(grouped) > 1:
                left.append(" " if compact else "")
                for key, display, _description, enabled, _g, _c in grouped:
                    self._key(left, key, display, "", enabled, spans)
                left.append(" ")
                left.append(group + " ",
                            style=self.get_component_rich_style("console-footer--description"))
            else:
                for key, display, description, enabled, _g, _c in grouped:
                    self._key(left, key, display, description, enabled, spans)
                    left.append(" ")
        right = Text(no_wrap=True, end="")
        right_spans: list[tuple[int, int, str, bool]] = []
        if palette is not None:
            right.append("▏", style=self.get_component_rich_style("console-footer--divider"))
            key, display, description, enabled = palette
            self._key(right, key, display, description, enabled, right_spans)
            right.append(" ")
        room = width - right.cell_len
        left.truncate(max(room, 0))
        left.pad_right(max(room - left.cell_len, 0))
        self._spans = (*((a, min(b, room), k, e) for a, b, k, e in spans if a < room),
                       *((a + room, b + room, k, e) for a, b, k, e in right_spans))
        return left + right

    def render(self) -> Text:
        return self.line(self.size.width)
