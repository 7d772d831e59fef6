"""The strict TOML reader shared by ceremony.toml and policy.toml, and its line locator.

This module owns how a configuration error is reported: one `ConfigError` whose line reads
`<file>:<line>: <what is wrong> — <what to write instead>`. `tomllib` gives no line numbers for
values, so `Locator` finds the line of a key by scanning the source for its table header and key
(best effort: the file is always named, the line whenever it can be found).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from console.errors import ConfigError, VerificationError
from console.files import read_regular_file
from console.jsontypes import JsonMapping, JsonObject

__all__ = ["Locator", "PathPart", "Reader", "describe", "dotted", "load_toml"]

# One step of a value's path in a document: a key, or an index in an array of tables.
PathPart = str | int


def _split_dotted(text: str) -> tuple[str, ...] | None:
    """Split a TOML key ("a.b", '"x y".z') into its parts; None when it is not a key."""
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        if text[i] in "\"'":
            quote = text[i]
            end = text.find(quote, i + 1)
            if end < 0:
                return None
            parts.append(text[i + 1 : end])
            i = end + 1
        else:
            m = re.match(r"[A-Za-z0-9_-]+", text[i:])
            if m is None:
                return None
            parts.append(m.group(0))
            i += m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return tuple(parts)
        if text[i] != ".":
            return None
        i += 1


class Locator:
    """Best-effort map from a value's path, e.g. ("keysets", "api", "consumers", 1), to a line."""

    def __init__(self, source: str) -> None:
        self._lines = source.splitlines()
        # (first line index, header path as element path) for each table header, in order.
        self._sections: list[tuple[int, tuple[PathPart, ...]]] = [(0, ())]
        counts: dict[tuple[str, ...], int] = {}
        in_multiline: str | None = None
        for idx, raw in enumerate(self._lines):
            line = raw.strip()
            if in_multiline is not None:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_multiline = quote
            if line.startswith("[["):
                end = line.find("]]")
                key = _split_dotted(line[2:end]) if end > 0 else None
                if key is not None:
                    index = counts.get(key, 0)
                    counts[key] = index + 1
                    self._sections.append((idx, (*key, index)))
            elif line.startswith("["):
                end = line.find("]")
                key = _split_dotted(line[1:end]) if end > 0 else None
                if key is not None:
                    self._sections.append((idx, key))

    def line_of(self, path: Sequence[PathPart]) -> int | None:
        path = tuple(path)
        best: tuple[int, int] | None = None  # (section number, header length)
        for number, (_, header) in enumerate(self._sections):
            if len(header) <= len(path) and path[: len(header)] == header and (
                best is None or len(header) >= best[1]
            ):
                best = (number, len(header))
        if best is None:
            return None
        number, size = best
        start = self._sections[number][0]
        stop = (
            self._sections[number + 1][0] if number + 1 < len(self._sections) else len(self._lines)
        )
        rest = path[size:]
        if rest and isinstance(rest[0], str):
            first = start + 1 if size else start
            for idx in range(first, stop):
                line = self._lines[idx]
                if "=" not in line or line.lstrip().startswith("#"):
                    continue
                key = _split_dotted(line.split("=", 1)[0])
                if key is not None and tuple(rest[: len(key)]) == key[: len(rest)]:
                    return idx + 1
                if key is not None and key[0] == rest[0]:
                    return idx + 1
        # A table written as its own header ([keysets.api]) when the path names its parent.
        for line_index, header in self._sections[1:]:
            if len(header) > len(path) and header[: len(path)] == path:
                return line_index + 1
        return start + 1 if size else None


# --- the strict reader ---------------------------------------------------------------------


class Reader:
    """Typed access to a parsed TOML document that reports errors as `file:line: what — fix`."""

    def __init__(self, where: str, locator: Locator | None) -> None:
        self.where = where
        self.locator = locator

    def fail(self, path: Sequence[PathPart], what: str, fix: str) -> NoReturn:
        line = self.locator.line_of(path) if self.locator is not None else None
        if line is None and self.locator is not None:
            line = 1  # about the file as a whole
        prefix = f"{self.where}:{line}" if line is not None else self.where
        if self.locator is None and path:
            what = f"{dotted(path)}: {what}"
        raise ConfigError(f"{prefix}: {what}", fix)

    def table(
        self,
        value: object,
        path: Sequence[PathPart],
        allowed: Sequence[str],
        required: Sequence[str] = (),
    ) -> JsonMapping:
        if not isinstance(value, Mapping):
            self.fail(path, f"{describe(path)} must be a table", f"write [{dotted(path)}]")
        for key in value:
            if key not in allowed:
                self.fail(
                    (*path, key),
                    f"unknown key {key!r} in {describe(path)}",
                    f"remove it; allowed keys: {', '.join(allowed)}",
                )
        for key in required:
            if key not in value:
                self.fail(
                    path,
                    f"{describe(path)} has no {key!r}",
                    f"add a [{key}] table" if not path else f"add {key} = … to {describe(path)}",
                )
        return value

    def string(self, table: JsonMapping, path: Sequence[PathPart], key: str) -> str:
        value = table[key]
        if not isinstance(value, str):
            self.fail((*path, key), f"{key} must be a string", f'write {key} = "…"')
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            self.fail((*path, key), f"{key} contains control characters", "remove them")
        return value

    def boolean(self, table: JsonMapping, path: Sequence[PathPart], key: str) -> bool:
        value = table[key]
        if not isinstance(value, bool):
            self.fail((*path, key), f"{key} must be true or false", f"write {key} = true")
        return value

    def integer(self, table: JsonMapping, path: Sequence[PathPart], key: str) -> int:
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail((*path, key), f"{key} must be a whole number", f"write {key} = 3072")
        return value


def dotted(path: Sequence[PathPart]) -> str:
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")


def describe(path: Sequence[PathPart]) -> str:
    return f"[{dotted(path)}]" if path else "the file"


def load_toml(path: Path) -> tuple[JsonObject, Locator]:
    where = str(path)
    try:  # bounded and never blocking: an insider may swap in a FIFO or a huge file
        raw = read_regular_file(path, follow_links=True)
    except VerificationError as e:
        reason = e.message.removeprefix(f"{path} ").removeprefix(f"cannot read {path}: ")
        raise ConfigError(
            f"{where}: cannot read the file ({reason})",
            "check the path, or run `ceremony init` / `ceremony demo`",
        ) from e
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{where}:{line}: not valid UTF-8", "save the file as UTF-8") from e
    try:
        data = tomllib.loads(source)
    except RecursionError as e:
        raise ConfigError(f"{where}: TOML nested too deeply", "flatten the file") from e
    except tomllib.TOMLDecodeError as e:
        text = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", text)
        if m is None:
            m_end = re.search(r"\(at end of document\)", text)
            line = source.count("\n") + 1
            what = text.replace(m_end.group(0), "").strip() if m_end else text
            raise ConfigError(
                f"{where}:{line}: malformed TOML: {what} (at end of file)",
                "fix the TOML syntax (see https://toml.io)",
            ) from e
        what = text[: m.start()].strip()
        raise ConfigError(
            f"{where}:{m.group(1)}: malformed TOML: {what} (column {m.group(2)})",
            "fix the TOML syntax (see https://toml.io)",
        ) from e
    return data, Locator(source)
