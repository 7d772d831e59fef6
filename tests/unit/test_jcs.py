"""console.jcs against the RFC 8785 author's vectors (tests/unit/data/jcs), byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- the C encoder's fast path writes exactly what the reference writer writes ----------------

_TEXT = st.text(alphabet=st.one_of(
    st.characters(max_codepoint=0x7F),  # ASCII, controls included
    st.sampled_from("é\u2028\u202e\ue000\uffff\U0001f600\U00010000"),  # BMP high and astral
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
), max_size=8)
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), _TEXT,
                     st.floats(allow_nan=True, allow_infinity=True))
_KEYS = st.one_of(_TEXT, _TEXT, st.integers(), st.none())
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=20)


def _reference(value: object) -> bytes | str:
    """What the recursive writer alone gives: the bytes, or the refusal's message."""
    parts: list[str] = []
    try:
        jcs._write(value, parts, 0, False)
        return "".join(parts).encode("utf-8")
    except EntryRejectedError as e:
        return e.message


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_fast_path_gives_the_reference_bytes_or_refusal(value: object) -> None:
    try:
        got: bytes | str = jcs.canonicalize(value)
    except EntryRejectedError as e:
        got = e.message
    assert got == _reference(value)


def test_fast_path_depth_limit_is_the_reference_one() -> None:
    for depth in range(jcs.MAX_DEPTH - 2, jcs.MAX_DEPTH + 3):
        for leaf in (1, [], {}):
            value: object = leaf
            for _ in range(depth):
                value = {"a": value}
            try:
                got: bytes | str = jcs.canonicalize(value)
            except EntryRejectedError as e:
                got = e.message
            assert got == _reference(value), depth
