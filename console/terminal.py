"""Where the `ceremony` command's input and output meet the environment it runs in.

This module owns, for the CLI:

* **Typed input.** Secrets (officer passphrases, the token PIN at `init`) and typed
  confirmations are read from the controlling terminal, `/dev/tty`, and from nothing else:
  secrets with echo off. Without a terminal the answer is `NoTerminalError` (exit 2), whose hint
  names the option to use instead (`--passphrase-file`, `--pin-file`, ...); Ctrl-D is
  `TerminalInputError` (exit 1). Nothing here falls back to reading stdin, and nothing imports
  `getpass`, whose fallback reads stdin *with echo on* after a warning.
* **The output streams.** `setup_output()` runs once at CLI start; `finish(status)` at the end
  turns a lost stdout into exit status 141.
* **The colour rule.** The CLI prints no escape sequences (colour, cursor movement) today. Any
  that are added must ask `colour_enabled(stream)` first, which says no under `NO_COLOR`,
  `TERM=dumb`, an unset `TERM`, or a stream that is not a terminal. The TUI (Textual) is
  outside this rule: it honours `NO_COLOR` itself.

Decisions, and why:

* **Unencodable characters are written as `\\uXXXX`** (surrogate pairs above U+FFFF), in the
  stream's own encoding, instead of being swapped for ASCII look-alikes (`-` for `—`, `ok` for
  `✓`). stdout carries data: kids, notes, officer names, `--json`. A look-alike changes data
  silently, and a note holding `—` would become one holding `-`. `\\uXXXX` is lossless, it is the
  form `console.errors` already uses for inert text, and non-ASCII only ever occurs inside JSON
  strings, where `\\uXXXX` is a valid escape: `status --json` under `LC_ALL=C` still parses to
  the same values. Python's own `backslashreplace` would write `\\xe9` for `é`, which JSON
  rejects. A C locale over a UTF-8 terminal is what this handles; the bytes are never guessed.
* **A closed pipe ends quietly with 141** (128 + SIGPIPE, what a shell reports for a process
  killed by SIGPIPE), but SIGPIPE stays ignored, as Python sets it, instead of being restored to
  SIG_DFL. SIG_DFL would kill the process at whatever write meets the closed pipe, for instance
  a progress line written to stderr between an HSM operation and its ledger record. The ceremony
  would survive (it is crash-safe and resumable), but a finished ceremony is better than one to
  resume. So a write whose reader has gone is dropped, the stream is pointed at /dev/null, and
  the work goes on. Losing stdout (the data) turns a success into 141; a failure keeps its own
  status. Losing stderr (progress, the error line) does not change the status.
"""

from __future__ import annotations

import codecs
import io
import locale
import os
import signal
import sys
import termios
from collections.abc import Mapping
from contextlib import suppress
from typing import IO, Final, TypeAlias

from console.errors import ConfirmationError, NoTerminalError, TerminalInputError

__all__ = [
    "OUTPUT_CLOSED",
    "ask_line",
    "ask_secret",
    "colour_enabled",
    "confirm",
    "finish",
    "require_terminal",
    "require_tty",
    "setup_output",
]

OUTPUT_CLOSED: Final[int] = 128 + signal.SIGPIPE
"""Exit status when stdout's reader went away (141 on Linux and macOS)."""

_ESCAPE_ERRORS: Final = "ceremony.escape"
_TTY: Final = "/dev/tty"
_MAX_LINE: Final = 4096  # bytes; a terminal in canonical mode takes at most 4095 per line


# --- output --------------------------------------------------------------------------------


def _escape_unencodable(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: each character the stream cannot encode becomes `\\uXXXX`."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return "".join(_u_escape(ch) for ch in error.object[error.start:error.end]), error.end


def _u_escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON's form above the BMP: a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


codecs.register_error(_ESCAPE_ERRORS, _escape_unencodable)


class _GuardedStream(io.TextIOWrapper):
    """stdout or stderr: never fails on a character, and never on a reader that went away."""

    reader_gone: bool = False

    def write(self, s: str) -> int:
        try:
            return super().write(s)
        except BrokenPipeError:
            self._drop_output()
            return len(s)

    def flush(self) -> None:
        try:
            super().flush()
        except BrokenPipeError:
            self._drop_output()

    def _drop_output(self) -> None:
        # The reader is gone for good. Point the descriptor at /dev/null, so that the bytes
        # still buffered, every later write and the flush at interpreter exit all succeed
        # (Python would otherwise print "Exception ignored ... BrokenPipeError" at exit).
        self.reader_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.fileno())
        finally:
            os.close(devnull)
        super().flush()


def setup_output() -> None:
    """Make stdout and stderr safe for any locale and any reader; call once at CLI start.

    Only the process's own streams are replaced (`sys.stdout is sys.__stdout__`): a test's
    capture object, or a caller's redirection, is left alone. Calling it again does nothing.
    A stream whose descriptor was closed at start (Python then sets it to None) becomes
    /dev/null, so that printing to it cannot fail.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
            continue
        if isinstance(stream, _GuardedStream) or stream is not getattr(sys, f"__{name}__"):
            continue
        if not isinstance(stream, io.TextIOWrapper):
            continue
        with suppress(BrokenPipeError):  # the guarded stream meets the closed pipe again
            stream.flush()
        guarded = _GuardedStream(
            stream.buffer, encoding=stream.encoding, errors=_ESCAPE_ERRORS,
            line_buffering=stream.line_buffering, write_through=stream.write_through,
        )
        # sys.__stdout__ keeps the original wrapper, which shares the buffer: it must not be
        # collected (closing it would close the descriptor), and it is not, being in sys.
        setattr(sys, name, guarded)


def finish(status: int) -> int:
    """The exit status, once the output is flushed: a success whose stdout was lost is 141."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, _GuardedStream):
            stream.flush()
    if status == 0 and isinstance(sys.stdout, _GuardedStream) and sys.stdout.reader_gone:
        return OUTPUT_CLOSED
    return status


def colour_enabled(stream: IO[str] | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether escape sequences may be written to `stream`.

    No when `NO_COLOR` is set to anything but the empty string (no-color.org), when `TERM` is
    `dumb` or unset, or when the stream is not a terminal (a pipe, a file, a log).
    """
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR", ""):
        return False
    if env.get("TERM", "dumb") == "dumb":
        return False
    return stream is not None and stream.isatty()


# --- input ---------------------------------------------------------------------------------


def require_terminal(what: str, *, instead: str) -> None:
    """Raise `NoTerminalError` unless stdin and stderr are both terminals (the TUI needs both:
    Textual reads keys from stdin and draws on stderr)."""
    for stream in (sys.__stdin__, sys.__stderr__):
        if stream is None or not _isatty(stream):
            raise NoTerminalError(f"{what} needs a terminal (stdin and stderr), and there is none",
                                  f"run it in a terminal, or {instead}")


def ask_secret(prompt: str, *, instead: str) -> str:
    """Ask for a secret on the terminal, with echo off; return it without the newline.

    `instead` names the option that gives the secret without a terminal, e.g.
    `--passphrase-file alice=FILE`. The secret never appears in a message.

    Raises:
        NoTerminalError: there is no controlling terminal (the hint says to pass `instead`).
        TerminalInputError: input ended (Ctrl-D) before Enter, or the line cannot be used.
        KeyboardInterrupt: Ctrl-C; echo is restored first.
    """
    fd = _open_terminal(prompt, instead)
    try:
        saved = _attributes(fd, prompt, instead)
        quiet = list(saved)
        lflags = saved[3]
        if not isinstance(lflags, int):  # never from termios; no echo to turn off, no secret
            raise _no_terminal(prompt, instead)
        quiet[3] = lflags & ~termios.ECHO  # ICANON stays, so the line editor still works
        try:
            # TCSAFLUSH discards anything typed before the prompt: it was echoed, so it is not
            # secret any more.
            termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
            _write(fd, prompt)
            return _decode(_read_line(fd), prompt, instead)
        finally:
            with suppress(termios.error):  # the terminal went away: no echo left to restore
                termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
            _write(fd, "\n")  # the Enter the user typed was not echoed either
    finally:
        os.close(fd)


def require_tty(what: str, *, instead: str) -> None:
    """Raise `NoTerminalError` unless there is a controlling terminal to ask on (the test
    `ask_secret` and `ask_line` make), so a command can refuse before it changes anything."""
    os.close(_open_terminal(what, instead))


def ask_line(prompt: str, *, instead: str) -> str:
    """Ask for one line on the terminal, echoed (e.g. a plan's digest words); return it without
    the newline. `instead` names the option that gives the answer without a terminal.

    Raises:
        NoTerminalError: there is no controlling terminal.
        TerminalInputError: input ended (Ctrl-D) before Enter, or the line cannot be used.
    """
    fd = _open_terminal(prompt, instead)
    try:
        _write(fd, prompt)
        return _decode(_read_line(fd), prompt, instead)
    finally:
        os.close(fd)


def confirm(prompt: str, expected: str, *, instead: str) -> None:
    """Ask for `expected` to be typed back; return only if it was.

    Case and runs of spaces do not count (`Tulip  puddle` matches `tulip puddle`): the words are
    what is checked, not the typing.

    Raises:
        NoTerminalError: there is no controlling terminal.
        TerminalInputError: input ended (Ctrl-D) before Enter, or the line cannot be used.
        ConfirmationError: what was typed is not `expected`.
    """
    typed = ask_line(prompt, instead=instead)
    if _words(typed) != _words(expected):
        raise ConfirmationError("what was typed does not match what was shown",
                                f"type it exactly as shown, or pass {instead}")


def _words(text: str) -> list[str]:
    return text.casefold().split()


def _open_terminal(prompt: str, instead: str) -> int:
    # O_NOCTTY: opening /dev/tty must never make a terminal ours. ENXIO (no controlling
    # terminal: cron, CI, `setsid`, ssh without -t) and every other failure mean "no terminal".
    try:
        fd = os.open(_TTY, os.O_RDWR | os.O_NOCTTY)
    except OSError as e:
        raise _no_terminal(prompt, instead) from e
    if not os.isatty(fd):
        os.close(fd)
        raise _no_terminal(prompt, instead)
    return fd


_Attributes: TypeAlias = list[int | list[bytes | int]]
"""What `termios.tcgetattr` returns: iflag, oflag, cflag, lflag, ispeed, ospeed, cc."""


def _attributes(fd: int, prompt: str, instead: str) -> _Attributes:
    try:
        return termios.tcgetattr(fd)
    except termios.error as e:  # a tty without termios is no terminal to hide a secret on
        raise _no_terminal(prompt, instead) from e


def _no_terminal(prompt: str, instead: str) -> NoTerminalError:
    return NoTerminalError(f"{_label(prompt)} must be typed on a terminal, and there is none",
                           f"run it in a terminal, or pass {instead}")


def _label(prompt: str) -> str:
    """`passphrase for alice's card: ` -> `passphrase for alice's card`, inert."""
    return _printable(prompt.strip().rstrip(":?").strip())


def _printable(text: str) -> str:
    # A prompt can hold an officer name taken from argv: it must not drive the terminal.
    # isprintable() is False for control, format (bidi) and separator characters but space.
    return "".join(ch if ch.isprintable() else _u_escape(ch) for ch in text)


def _encoding() -> str:
    # The locale's encoding, as Python's own text streams use it; but ASCII (the C locale)
    # means UTF-8: ASCII is a subset of it, and a C locale over a UTF-8 terminal is the usual
    # case (containers, ssh). Passphrase files are UTF-8 too.
    name = locale.getpreferredencoding(False)
    return "utf-8" if codecs.lookup(name).name == "ascii" else name


def _write(fd: int, text: str) -> None:
    data = _printable(text.rstrip("\n")).encode(_encoding(), errors=_ESCAPE_ERRORS)
    if text.endswith("\n"):
        data += b"\n"
    with suppress(OSError):  # a prompt that cannot be shown is no error; reading will tell
        os.write(fd, data)


def _read_line(fd: int) -> bytes:
    """Bytes up to the newline. In canonical mode each read returns at most one line, or what
    was typed before a Ctrl-D; an empty read is the end of input."""
    data = bytearray()
    try:
        while True:
            try:
                chunk = os.read(fd, 1024)
            except OSError as e:  # EIO: the terminal hung up
                raise TerminalInputError("the terminal went away before an answer was typed",
                                      "run the command again") from e
            if not chunk:
                raise TerminalInputError("input ended (Ctrl-D) before an answer was typed",
                                      "run the command again and press Enter after typing")
            data += chunk
            end = data.find(b"\n")
            if end >= 0:
                return bytes(data[:end]).rstrip(b"\r")
            if len(data) > _MAX_LINE:
                raise TerminalInputError("the line typed is too long",
                                      f"type at most {_MAX_LINE} bytes")
    finally:
        data[:] = bytes(len(data))  # best effort: do not leave the secret in a free buffer


def _decode(raw: bytes, prompt: str, instead: str) -> str:
    encoding = _encoding()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        # Never include the bytes: they may be a passphrase.
        raise TerminalInputError(f"what was typed ({_label(prompt)}) is not {encoding} text",
                              f"set LANG to the terminal's encoding, or pass {instead}") from e


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # a closed stream
        return False
