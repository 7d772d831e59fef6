"""Real processes against one ledger: two writers at once, a writer holding the lock, SIGKILL.

Children are `python -c` subprocesses running the real Ledger; nothing is mocked.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.errors import LedgerBusyError
from console.ledger import Ledger
from tests.unit.test_ledger_support import T0, new_ledger

ROOT = Path(__file__).resolve().parents[2]

APPENDER = """
import sys
from pathlib import Path
from console.ledger import Ledger
from tests.unit.test_ledger_support import T0
folder, tag, count, timeout = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
ledger = Ledger.open(folder / "ledger.sqlite", checkpoint_file=folder / ".checkpoint",
                     busy_timeout=timeout)
print("ready", flush=True)
for i in range(count):
    entry = ledger.append("note", {"writer": tag, "i": i}, time=T0, actor=tag)
    print(entry.seq, flush=True)
ledger.close()
"""

HOLDER = """
import sys, time
from pathlib import Path
from console.ledger import Ledger
from tests.unit.test_ledger_support import T0
folder = Path(sys.argv[1])
ledger = Ledger.open(folder / "ledger.sqlite", checkpoint_file=folder / ".checkpoint")
with ledger.transaction() as w:
    w.append("note", {"holder": True}, time=T0, actor="holder")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
ledger.close()
"""


def spawn(code: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def integrity_ok(db: Path) -> None:
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def test_two_processes_appending_at_once(tmp_path: Path) -> None:
    new_ledger(tmp_path).close()
    children = [spawn(APPENDER, tmp_path, tag, 150, 10.0) for tag in ("w1", "w2")]
    outputs = [c.communicate(timeout=120) for c in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    seqs = [int(x) for out, _ in outputs for x in out.split() if x.isdigit()]
    assert sorted(seqs) == list(range(5, 305))  # every append got its own seq, none lost
    integrity_ok(tmp_path / "ledger.sqlite")
    with Ledger.open(tmp_path / "ledger.sqlite", checkpoint_file=tmp_path / ".checkpoint") as led:
        assert led.size == 305
        led.verify_tree()
        by_writer = {"w1": [], "w2": []}  # type: dict[str, list[int]]
        for e in led.entries(5):
            by_writer[e.data["writer"]].append(e.data["i"])
        assert by_writer == {"w1": list(range(150)), "w2": list(range(150))}


def test_second_writer_gets_a_clear_busy_error_with_the_pid(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    holder = spawn(HOLDER, tmp_path, 1.5)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        ledger.busy_timeout = 0.3
        size = ledger.size
        with pytest.raises(LedgerBusyError) as info:
            ledger.append("note", {}, time=T0, actor="console")
        assert f"process {holder.pid}" in info.value.user_message()
        assert ledger.size == size
    finally:
        holder.communicate(timeout=30)
    assert holder.returncode == 0
    ledger.busy_timeout = 5.0
    ledger.append("note", {"after": True}, time=T0, actor="console")
    ledger.verify_tree()
    ledger.close()


@pytest.mark.parametrize("round_", range(4))
def test_sigkill_mid_append_loses_nothing_that_returned(tmp_path: Path, round_: int) -> None:
    new_ledger(tmp_path).close()
    child = spawn(APPENDER, tmp_path, "victim", 100_000, 10.0)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(random.Random(round_).uniform(0.05, 0.6))
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    returned = [int(x) for x in out.split() if x.isdigit()]
    assert returned, "the child was killed before its first append returned"
    integrity_ok(tmp_path / "ledger.sqlite")
    with Ledger.open(tmp_path / "ledger.sqlite", checkpoint_file=tmp_path / ".checkpoint") as led:
        assert led.size >= (returned[-1] + 1 if returned else 4)
        for seq in returned[-20:]:
            assert led.entry(seq).data["writer"] == "victim"
        led.verify_tree()
        led.append("note", {"after": "crash"}, time=T0, actor="console")  # lock was released
