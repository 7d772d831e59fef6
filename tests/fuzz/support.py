"""Helpers for fuzzing the console's parsers: a TOML writer, byte mutations and run counters.

The Hypothesis tests (`tests/unit/test_fuzz_*.py`) and the atheris harnesses in this folder share
them. Nothing here is a parser under test: the writer only has to produce TOML that `tomllib`
reads back, so that structured mutations reach the validation code behind the TOML syntax.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from hypothesis import strategies as st

from console.errors import ConsoleError

T = TypeVar("T")

RUNS: Counter[str] = Counter()
"""Examples run per parser in this session (reported at the end of each fuzz module)."""

HOSTILE_TEXT: tuple[str, ...] = (
    "",
    "\n",
    "\r",
    "\r\n",
    "\x00",
    "\x1b[2J\x1b[31m",
    "\x7f",
    "\x85",
    "\u202e",
    "\u2066",
    "\ufeff",
    "[bold]x[/bold]",
    "\n\u2014 alice " + "A" * 86 + "=\n",
    "a" * 70_000,
    "9" * 5000,
    "99999999999999999999d",
)


def call(parser: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | ConsoleError:
    """Run `fn` and count the run; a ConsoleError is returned, anything else propagates."""
    RUNS[parser] += 1
    try:
        return fn(*args, **kwargs)
    except ConsoleError as e:
        # The one line a user would see must be a single inert line.
        line = e.user_message()
        assert "\n" not in line and "\r" not in line and "\x1b" not in line, line
        return e


def toml_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\' or code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_value(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def toml_dumps(doc: Mapping[str, Any]) -> str:
    """Top-level `key = inline value` lines: valid TOML for any str/int/float/bool/list/dict."""
    return "".join(f"{toml_string(str(k))} = {toml_value(v)}\n" for k, v in doc.items())


# --- strategies ----------------------------------------------------------------------------

# Text a UTF-8 file can hold (no lone surrogates), biased to the hostile cases.
file_text = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.sampled_from(HOSTILE_TEXT[:-3]),
)
toml_scalars = st.one_of(
    file_text,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
)
toml_values = st.recursive(
    toml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(file_text, children, max_size=4)
    ),
    max_leaves=12,
)
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=20),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)


@st.composite
def mutated_tree(draw: st.DrawFn, tree: Any, values: st.SearchStrategy[Any] = toml_values) -> Any:
    """Apply 1-3 edits to a parsed document: replace, delete or add a value somewhere."""
    import copy

    doc = copy.deepcopy(tree)
    for _ in range(draw(st.integers(1, 3))):
        containers: list[Any] = []

        stack = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, dict | list):
                containers.append(node)
                stack.extend(node.values() if isinstance(node, dict) else node)
        node = draw(st.sampled_from(containers))
        op = draw(st.sampled_from(("replace", "delete", "add")))
        if isinstance(node, dict):
            keys = list(node)
            if op == "add" or not keys:
                node[draw(st.one_of(file_text, st.sampled_from(keys or ["x"])))] = draw(values)
            elif op == "delete":
                del node[draw(st.sampled_from(keys))]
            else:
                node[draw(st.sampled_from(keys))] = draw(values)
        else:
            if op == "add" or not node:
                node.append(draw(values))
            elif op == "delete":
                del node[draw(st.integers(0, len(node) - 1))]
            else:
                node[draw(st.integers(0, len(node) - 1))] = draw(values)
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes) -> bytes:
    """Byte-level edits of a valid file: flips, inserts, deletes, truncation, splices."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "insert", "delete", "truncate", "dup")))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(
                st.one_of(st.binary(min_size=1, max_size=8),
                          st.sampled_from([b"\n", b"\x00", b"\xff", b'"', b"[", b"{", b"="]))
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
        else:
            end = min(len(data), pos + draw(st.integers(1, 32)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


def report(request: Any, module: str, before: Mapping[str, int]) -> None:
    """Write the examples-run-per-parser table of one module to the pytest terminal."""
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if terminal is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        terminal.write_line("")
        terminal.write_line(f"fuzz examples run per parser ({module}):")
        for name, count in sorted(RUNS.items()):
            if count - before.get(name, 0):
                terminal.write_line(f"  {name:<36} {count - before.get(name, 0):>6}")
