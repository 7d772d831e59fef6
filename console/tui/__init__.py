"""The Textual face of the console: screens, widgets and dialogs over the same services as the CLI.

Import `console.tui.app.run_app` to open it; nothing here is imported by the core.
"""

__all__: list[str] = []
