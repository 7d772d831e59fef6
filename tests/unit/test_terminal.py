"""console.terminal: secrets only from a terminal with echo off, output that survives any locale
and any reader, and the colour rule.

Anything about the controlling terminal runs in a child process: started in a new session it
has none (so the test never prompts on the developer's own terminal), and `PtySession` gives it
a pseudo-terminal when a terminal is the point.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from console import terminal
from console.errors import NoTerminalError, UsageError
from tests.pty_session import PtySession

REPO = Path(__file__).resolve().parents[2]
C_LOCALE = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LC_") and k not in ("LANG", "PYTHONUTF8", "PYTHONIOENCODING")}
    env.update({"PYTHONPATH": str(REPO), "LANG": "C.UTF-8", **extra})
    return env


def _python(code: str, *, env: dict[str, str] | None = None, stdin: int | None = None,
            input: bytes | None = None, stdout: int = subprocess.PIPE,
            ) -> subprocess.CompletedProcess[bytes]:
    """Run `code` with no controlling terminal (a new session)."""
    return subprocess.run([sys.executable, "-c", code], env=env or _env(), cwd=REPO,
                          stdin=stdin if input is None else None, input=input, stdout=stdout,
                          stderr=subprocess.PIPE, start_new_session=True, timeout=30, check=False)


# --- output --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["—", "é", "✓ ok", "😀", "\udcff", "a\u202eb"])
def test_unencodable_characters_become_json_escapes(text: str) -> None:
    escaped = text.encode("ascii", errors="ceremony.escape").decode("ascii")
    assert json.loads(f'"{escaped}"') == text  # lossless, and valid inside a JSON string


PRINT_DATA = (
    "import json; from console import terminal; terminal.setup_output(); "
    "print('status \\u2014 \\u2713 caf\\u00e9'); "
    "print(json.dumps({'note': 'caf\\u00e9 \\u2014 \\U0001F600'}, ensure_ascii=False)); "
    "import sys; print('progress \\u2026', file=sys.stderr); "
    "raise SystemExit(terminal.finish(0))"
)


def test_c_locale_output_is_ascii_and_json_stays_json() -> None:
    out = _python(PRINT_DATA, env=_env(**C_LOCALE))
    assert out.returncode == 0, out.stderr
    assert out.stdout.isascii() and out.stderr.isascii()
    text, data = out.stdout.decode().splitlines()
    assert text == "status \\u2014 \\u2713 caf\\u00e9"
    assert json.loads(data) == {"note": "café — \U0001F600"}
    assert out.stderr.decode() == "progress \\u2026\n"


def test_utf8_locale_output_is_unchanged() -> None:
    out = _python(PRINT_DATA)
    assert out.stdout.decode("utf-8").splitlines()[0] == "status — ✓ café"


def _closed_pipe() -> int:
    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


@pytest.mark.parametrize("status", [0, 1])
def test_closed_stdout_ends_quietly_with_141(status: int) -> None:
    code = ("from console import terminal; terminal.setup_output(); "
            "[print('line', i) for i in range(10000)]; "
            f"raise SystemExit(terminal.finish({status}))")
    write_end = _closed_pipe()
    try:
        out = _python(code, stdout=write_end)
    finally:
        os.close(write_end)
    assert out.stderr == b""  # no BrokenPipeError, no "Exception ignored"
    # A success whose data was lost is 141 (128 + SIGPIPE); a failure keeps its own status.
    assert out.returncode == (terminal.OUTPUT_CLOSED if status == 0 else status)
    assert terminal.OUTPUT_CLOSED == 141


def test_closed_stderr_does_not_change_the_status() -> None:
    code = ("import sys; from console import terminal; terminal.setup_output(); "
            "[print('progress', i, file=sys.stderr) for i in range(10000)]; print('data'); "
            "raise SystemExit(terminal.finish(0))")
    write_end = _closed_pipe()
    try:
        out = subprocess.run([sys.executable, "-c", code], env=_env(), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=write_end, timeout=30, check=False)
    finally:
        os.close(write_end)
    assert (out.returncode, out.stdout) == (0, b"data\n")


def test_closed_descriptors_at_start_are_survived() -> None:
    code = ("import sys; from console import terminal; terminal.setup_output(); "
            "print('x'); print('y', file=sys.stderr); raise SystemExit(terminal.finish(0))")
    out = subprocess.run(["sh", "-c", 'exec "$@" >&- 2>&-', "sh", sys.executable, "-c", code],
                         env=_env(), cwd=REPO, timeout=30, check=False)
    assert out.returncode == 0


def test_a_capture_object_is_left_alone(capsys: pytest.CaptureFixture[str]) -> None:
    before = (sys.stdout, sys.stderr)
    terminal.setup_output()
    terminal.setup_output()
    assert (sys.stdout, sys.stderr) == before
    print("—")
    assert terminal.finish(0) == 0
    assert capsys.readouterr().out == "—\n"


# --- the colour rule -----------------------------------------------------------------------


@pytest.mark.parametrize(("env", "tty", "allowed"), [
    ({"TERM": "xterm-256color"}, True, True),
    ({"TERM": "xterm-256color", "NO_COLOR": "1"}, True, False),
    ({"TERM": "xterm-256color", "NO_COLOR": ""}, True, True),  # no-color.org: empty is unset
    ({"TERM": "dumb"}, True, False),
    ({}, True, False),  # no TERM: nothing is known about the terminal
    ({"TERM": "xterm-256color"}, False, False),  # a pipe, a file, a log
], ids=["xterm", "NO_COLOR", "NO_COLOR-empty", "TERM-dumb", "no-TERM", "not-a-tty"])
def test_colour_rule(env: dict[str, str], tty: bool, allowed: bool, tmp_path: Path) -> None:
    if tty:
        master, slave = os.openpty()
        with open(slave, "w", encoding="utf-8") as stream:
            assert terminal.colour_enabled(stream, env) is allowed
        os.close(master)
    else:
        with open(tmp_path / "log", "w", encoding="utf-8") as stream:
            assert terminal.colour_enabled(stream, env) is allowed


ESCAPES = re.compile(r"\\x1b|\\033|\\u001b|\\N\{ESCAPE\}|\\x9b|\\e\[|chr\(27\)|\x1b", re.I)


def test_the_cli_writes_no_escape_sequences() -> None:
    # The rule made explicit: outside the TUI, no source holds an escape sequence. Colour, when
    # it comes, goes through terminal.colour_enabled (and this test learns about it then).
    console = REPO / "console"
    offenders = [str(p.relative_to(REPO)) for p in console.rglob("*.py")
                 if "tui" not in p.relative_to(console).parts
                 and ESCAPES.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


# --- input: no terminal --------------------------------------------------------------------

ASK = ("from console import terminal\n"
       "from console.errors import ConsoleError\n"
       "try:\n"
       "    answer = terminal.{call}\n"
       "except ConsoleError as e:\n"
       "    print(type(e).__name__, e.user_message())\n"
       "else:\n"
       "    print('ANSWER', repr(answer))\n")
CALLS = {
    "ask_secret": "ask_secret(\"passphrase for alice's card: \", "
                  "instead='--passphrase-file alice=FILE')",
    "ask_line": "ask_line('words: ', instead='--words \"w1 w2\"')",
    "confirm": "confirm('words: ', 'tulip puddle', instead='--words \"w1 w2\"')",
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("stdin", ["devnull", "pipe"])
def test_without_a_terminal_nothing_is_read(call: str, stdin: str) -> None:
    code = ASK.format(call=CALLS[call])
    out = (_python(code, stdin=subprocess.DEVNULL) if stdin == "devnull"
           else _python(code, input=b"hunter2\ntulip puddle\n"))
    line = out.stdout.decode()
    assert out.returncode == 0 and out.stderr == b"", out.stderr
    assert line.startswith("NoTerminalError "), line  # never reads the pipe, never echoes
    assert "hunter2" not in line and "Warning" not in line
    assert "must be typed on a terminal, and there is none — run it in a terminal, or pass" in line
    assert issubclass(NoTerminalError, UsageError)  # exit code 2


def test_no_terminal_message_names_the_option() -> None:
    out = _python(ASK.format(call=CALLS["ask_secret"]), stdin=subprocess.DEVNULL)
    assert out.stdout.decode().strip() == (
        "NoTerminalError passphrase for alice's card must be typed on a terminal, and there is "
        "none — run it in a terminal, or pass --passphrase-file alice=FILE")


def test_require_terminal_without_one() -> None:
    code = ("from console import terminal\n"
            "try:\n    terminal.require_terminal('the console (TUI)', instead='use status')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    out = _python(code, stdin=subprocess.DEVNULL)
    assert out.stdout.decode().startswith("NoTerminalError the console (TUI) needs a terminal")


# --- input: on a terminal ------------------------------------------------------------------

SECRET_THEN_LINE = (
    "import termios, sys\n"
    "from console import terminal\n"
    "from console.errors import ConsoleError\n"
    "try:\n"
    "    secret = terminal.ask_secret(sys.argv[1], instead='--passphrase-file FILE')\n"
    "    print('GOT', len(secret), secret == 'hunter2 caf\\u00e9', flush=True)\n"
    "    print('ECHO', bool(termios.tcgetattr(0)[3] & termios.ECHO), flush=True)\n"
    "    terminal.confirm('words: ', 'Tulip puddle', instead='--words W')\n"
    "    print('CONFIRMED', flush=True)\n"
    "except ConsoleError as e:\n"
    "    print('ERROR', type(e).__name__, e.user_message(), flush=True)\n"
    "except KeyboardInterrupt:\n"
    "    print('INTERRUPTED', bool(termios.tcgetattr(0)[3] & termios.ECHO), flush=True)\n"
)


def _session(prompt: str = "passphrase: ") -> PtySession:
    return PtySession([sys.executable, "-c", SECRET_THEN_LINE, prompt], env=_env(), cwd=REPO)


def test_secret_is_read_without_echo_then_echo_comes_back() -> None:
    session = _session()
    try:
        session.read_until(b"passphrase: ")
        assert not session.echo_on()
        session.send("hunter2 café\n".encode())
        session.read_until(b"words: ")
        assert session.echo_on()
        session.send(b"  tulip   PUDDLE \n")
        assert session.wait() == 0
    finally:
        session.kill()
    out = session.output.decode()
    assert "GOT 12 True" in out and "ECHO True" in out and "CONFIRMED" in out
    assert "hunter2" not in out  # never echoed


def test_confirmation_mismatch_is_refused() -> None:
    session = _session()
    try:
        session.read_until(b"passphrase: ")
        session.send("hunter2 café\n".encode())
        session.read_until(b"words: ")
        session.send(b"tulip pickle\n")
        session.wait()
    finally:
        session.kill()
    assert "ERROR ConfirmationError what was typed does not match" in session.output.decode()


@pytest.mark.parametrize(("keys", "expected"), [
    (b"\x04", "ERROR TerminalInputError input ended (Ctrl-D) before an answer was typed"),
    (b"abc\x04\x04", "ERROR TerminalInputError input ended (Ctrl-D)"),
    (b"\xff\xfe secret\n", "ERROR TerminalInputError what was typed (passphrase) is not UTF-8"),
    (b"\x03", "INTERRUPTED True"),  # Ctrl-C: echo is back on before the interrupt goes up
], ids=["ctrl-d", "ctrl-d-after-text", "not-utf-8", "ctrl-c"])
def test_ending_a_prompt_is_one_clean_line(keys: bytes, expected: str) -> None:
    session = _session()
    try:
        session.read_until(b"passphrase: ")
        session.send(keys)
        assert session.wait() == 0
    finally:
        session.kill()
    out = session.output.decode(errors="replace")
    assert expected in out, out
    assert "secret" not in out and "Traceback" not in out


def test_a_hostile_prompt_cannot_drive_the_terminal() -> None:
    session = _session("passphrase for \x1b[2J\u202eevil: ")
    try:
        session.read_until(b"evil: ")
        session.send(b"\x04")
        session.wait()
    finally:
        session.kill()
    assert b"\x1b" not in session.output and "\u202e".encode() not in session.output
    assert b"\\u001b[2J\\u202eevil: " in session.output
