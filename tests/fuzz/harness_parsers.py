"""Coverage-guided fuzzing of the console's text parsers with atheris (run by hand, not in CI).

    .venv/bin/python -m tests.fuzz.harness_parsers TARGET [libFuzzer options]

e.g. `-max_total_time=600` for ten minutes, `-runs=100000` for a fixed count.

TARGET is one of: note, checkpoint_body, verifier_key, entry, loads_strict, script, card,
sealed_pin. Any exception other than a ConsoleError is a crash (libFuzzer saves the input).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports():
    from console import jcs
    from console.ceremony.script import Script
    from console.errors import ConsoleError
    from console.ledger.checkpoint import parse_checkpoint_body, parse_note, parse_verifier_key
    from console.ledger.entry import parse_entry
    from console.quorum.cards import read_card_public
    from console.quorum.pin_gate import read_sealed_pin


def _text(fn: Callable[[str], object]) -> Callable[[bytes], object]:
    return lambda data: fn(data.decode("utf-8", "replace"))


TARGETS: dict[str, Callable[[bytes], object]] = {
    "note": _text(parse_note),
    "checkpoint_body": _text(parse_checkpoint_body),
    "verifier_key": _text(parse_verifier_key),
    "entry": parse_entry,
    "loads_strict": jcs.loads_strict,
    "script": lambda data: Script.from_bytes(data, "fuzz.toml"),
    "card": read_card_public,
    "sealed_pin": read_sealed_pin,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: harness_parsers TARGET [libFuzzer options]; TARGET in {sorted(TARGETS)}")
    target = TARGETS[sys.argv[1]]

    def one(data: bytes) -> None:
        with contextlib.suppress(ConsoleError):
            target(data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
