"""A command run on a pseudo-terminal that is its controlling terminal, for the prompt tests.

`/dev/tty` only opens in a process that has a controlling terminal, and a pty's slave becomes
one only for a session leader that asks for it. So the child is started in a new session
(`start_new_session`) with the slave as stdin, stdout and stderr, and a one-line Python shim
takes the slave as its controlling terminal (TIOCSCTTY) before exec'ing the real command. No
fork happens in the test process itself. On Linux the master reports the slave's termios, so
`echo_on()` tells whether the child turned echo off.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_ADOPT_TTY = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
              "os.execvp(sys.argv[1], sys.argv[1:])")


class PtySession:
    """`argv` running with a pty as its controlling terminal; everything it writes is kept."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path,
                 rows: int = 24, columns: int = 80) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", _ADOPT_TTY, *argv],
                                         stdin=slave, stdout=slave, stderr=slave, env=dict(env),
                                         cwd=cwd, start_new_session=True)
        finally:
            os.close(slave)
        self.output = b""

    def read_until(self, text: bytes, timeout: float = 20) -> bytes:
        """Read until `text` appears in the output; return the output so far."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or not self._read(deadline - time.monotonic()):
                raise AssertionError(f"{text!r} never came; the output was {self.output!r}")
        return self.output

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def echo_on(self) -> bool:
        return bool(termios.tcgetattr(self.master)[3] & termios.ECHO)

    def wait(self, timeout: float = 30) -> int:
        """Read everything until the child exits; return its exit status."""
        deadline = time.monotonic() + timeout
        while self._read(max(0.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                break
        try:
            return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        finally:
            self._close()

    def kill(self) -> None:
        """End the child if it still runs (a failed test), and let go of the pty."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1  # never close a number the process may have reused since

    def _read(self, timeout: float) -> bool:
        """Read what is there; False once the child has exited and everything is read."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, min(timeout, 0.2)))
        if not ready:
            return self.proc.poll() is None
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every slave descriptor is closed, the child is gone
            return False
        self.output += chunk
        return bool(chunk)
