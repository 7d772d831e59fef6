"""console.jcs against the RFC 8785 author's vectors (tests/unit/data/jcs), byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console import jcs
from console.errors import EntryRejectedError

DATA = Path(__file__).parent / "data" / "jcs"
NAMES = sorted(p.stem for p in (DATA / "input").glob("*.json"))


def test_vector_set_is_complete() -> None:
    assert NAMES == ["arrays", "french", "structures", "unicode", "values", "weird"]
    assert sorted(p.stem for p in (DATA / "output").glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_vector_bytes(name: str) -> None:
    value = json.loads((DATA / "input" / f"{name}.json").read_text(encoding="utf-8"))
    want = (DATA / "output" / f"{name}.json").read_bytes()
    assert jcs.canonicalize(value, allow_floats=True) == want


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        {"a": [float("nan")]},
        {1: "non-string key"},
        "lone \ud800 surrogate",
        {"k": b"bytes"},
        {"deep": _nested(40)},
    ],
    ids=["float", "nan", "int-key", "lone-surrogate", "bytes", "too-deep"],
)
def test_refusals(value: object) -> None:
    with pytest.raises(EntryRejectedError):
        jcs.canonicalize(value)


@pytest.mark.parametrize(
    "text", ['{"a":1,"a":2}', '{"a":NaN}', '{"a":1.0}', '{"a":Infinity}', "[1,", '"\\ud800']
)
def test_loads_strict_refusals(text: str) -> None:
    with pytest.raises(EntryRejectedError):
        jcs.loads_strict(text)
