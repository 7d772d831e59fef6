"""Fuzzing every pure parser of the console with Hypothesis: only ConsoleErrors may escape.

Each test feeds one parser three kinds of input: byte-level mutations of a valid file, structured
mutations of the valid document (a value replaced, deleted or added, then written back), and
random input. The property is the same everywhere: the parser returns its documented value or
raises a `console.errors.ConsoleError` whose one line is inert; any other exception is a crash.
Known crashes are kept as explicit `@example`s in tests marked `xfail(strict=True)` (see
/tmp/ceremony-bugs.md); each test counts its runs and the module prints them per parser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from console import jcs
from console.ceremony.journal import replay_plans
from console.ceremony.plan import Plan
from console.ceremony.script import SHIPPED_DIR, Script
from console.config import Policy, load_policy, load_workspace_config
from console.errors import ConsoleError, EntryRejectedError
from console.exports import make_bundle, public_jwk, verify_bundle
from console.exports.jwks import sanitize_public_jwk
from console.exports.verify_bundle import verify_jws
from console.ledger import OfficerRegistry
from console.ledger.checkpoint import (
    cosign_note,
    parse_checkpoint_body,
    parse_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
    verify_note,
)
from console.ledger.entry import encode_entry, parse_entry
from console.lifecycle import replay
from console.quorum import create_card, seal_pin
from console.quorum.approvals import (
    Approval,
    approval_status,
    sign_approval,
)
from console.quorum.cards import read_card_public, unlock_card
from console.quorum.pin_gate import open_pin, read_sealed_pin
from tests.fuzz.support import (
    HOSTILE_TEXT,
    RUNS,
    call,
    json_values,
    mutated_bytes,
    mutated_tree,
    report,
    toml_dumps,
)
from tests.unit.plan_samples import sample_plan
from tests.unit.test_ledger_support import KEYS, ORIGIN, T0, enrol_data

DATA = Path(__file__).parent / "data" / "config"
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)
NOW = datetime(2027, 1, 15, 10, 0, 0, tzinfo=UTC)
PASSPHRASE = "correct horse battery staple fuzz"


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    before = dict(RUNS)
    yield
    report(request, "tests/unit/test_fuzz_parsers.py", before)


_TMP = tempfile.TemporaryDirectory(prefix="fuzz-parsers-")


def _file(name: str, data: bytes) -> Path:
    path = Path(_TMP.name) / name
    path.write_bytes(data)
    return path


# --- ceremony.toml -------------------------------------------------------------------------

WS_BYTES = (DATA / "ceremony.toml").read_bytes()
WS_DOC = tomllib.loads(WS_BYTES.decode())


def _workspace(data: bytes) -> None:
    result = call("config.load_workspace_config", load_workspace_config, _file("c.toml", data))
    assert isinstance(result, ConsoleError) or result.org


@settings(FUZZ, max_examples=400)
@given(st.one_of(mutated_bytes(WS_BYTES), st.builds(lambda d: toml_dumps(d).encode(),
                                                     mutated_tree(WS_DOC))))
@example(WS_BYTES)
@example(b"")
@example(b"\xff\xfe")
@example(b"[workspace]\norg = '\x1b[2J'\n")
@example(toml_dumps({**WS_DOC, "quorum": {"routine": {"m": 2**70, "n": 3},
                                          "destructive": "3/3", "emergency": "1/3"}}).encode())
@example(toml_dumps({**WS_DOC, "quorum": {"routine": "99999999999999999999/3",
                                          "destructive": "3/3", "emergency": "1/3"}}).encode())
def test_workspace_config(data: bytes) -> None:
    _workspace(data)


@settings(FUZZ, phases=[Phase.explicit])
@given(st.binary())
@example(b"x = " + b"[" * 1200 + b"]" * 1200 + b"\n")
def test_workspace_config_deep_nesting(data: bytes) -> None:
    _workspace(data)


# --- policy.toml and Policy.from_dict ------------------------------------------------------

POLICY_BYTES = (DATA / "policy.toml").read_bytes()
POLICY_DOC = tomllib.loads(POLICY_BYTES.decode())
POLICY_DICT = load_policy(DATA / "policy.toml").to_dict()


def _policy_toml(data: bytes) -> None:
    result = call("config.load_policy", load_policy, _file("p.toml", data))
    assert isinstance(result, ConsoleError) or result.names


@settings(FUZZ, max_examples=400)
@given(st.one_of(mutated_bytes(POLICY_BYTES), st.builds(lambda d: toml_dumps(d).encode(),
                                                        mutated_tree(POLICY_DOC))))
@example(POLICY_BYTES)
@example(b"keysets = 3\n")
@example(b'[keysets.a]\nissuer = "\\u001b[2J"\nalg = "none"\nmax_token_lifetime = "1h"\n')
def test_policy_toml(data: bytes) -> None:
    _policy_toml(data)


@settings(FUZZ, phases=[Phase.explicit])
@given(st.binary())
@example(b'[keysets.a]\nissuer = "i"\nalg = "ES256"\nmax_token_lifetime = "1h"\n'
         b'cryptoperiod = "99999999999999999999d"\n')
def test_policy_toml_huge_duration(data: bytes) -> None:
    _policy_toml(data)


def _policy_dict(value: Any) -> None:
    result = call("config.Policy.from_dict", Policy.from_dict, value)
    assert isinstance(result, ConsoleError) or result.to_dict()


@settings(FUZZ, max_examples=500)
@given(st.one_of(mutated_tree(POLICY_DICT, json_values), json_values))
@example(POLICY_DICT)
@example({"v": 1, "keysets": {"a": None}})
@example({"v": 1, "keysets": []})
def test_policy_from_dict(value: Any) -> None:
    _policy_dict(value)


@settings(FUZZ, phases=[Phase.explicit])
@given(json_values)
@example({"v": 1, "keysets": {"a": {**POLICY_DICT["keysets"][next(iter(
    POLICY_DICT["keysets"]))], "cryptoperiod": 10**20}}})
def test_policy_from_dict_huge_seconds(value: Any) -> None:
    _policy_dict(value)


# --- ceremony scripts ----------------------------------------------------------------------

SCRIPTS = {p.name: p.read_bytes() for p in sorted(SHIPPED_DIR.glob("*.toml"))}
SCRIPT_DOCS = [tomllib.loads(b.decode()) for b in SCRIPTS.values()]


def _script(data: bytes) -> None:
    result = call("ceremony.Script.from_bytes", Script.from_bytes, data, "fuzz.toml")
    assert isinstance(result, ConsoleError) or result.steps


@settings(FUZZ, max_examples=600)
@given(st.one_of(
    st.sampled_from(list(SCRIPTS.values())).flatmap(mutated_bytes),
    st.sampled_from(SCRIPT_DOCS).flatmap(mutated_tree).map(lambda d: toml_dumps(d).encode()),
    st.binary(max_size=200),
))
@example(SCRIPTS["genesis.toml"])
@example(b'[script]\nname = "x"\nclass = "routine"\n[[steps]]\naction = "note"\n'
         b'text = "\\u001b[2J\\n\\u2014 alice AAAA=\\n\\u0000\\u202e"\n')
@example(b'[script]\nname = "x"\nclass = "routine"\n[parameters]\np = {type = ["text"]}\n'
         b'[[steps]]\naction = "reconcile"\n')
@example(b'[script]\nname = "x"\nclass = "routine"\nsteps = [1]\n')
def test_script(data: bytes) -> None:
    _script(data)


@settings(FUZZ, phases=[Phase.explicit])
@given(st.binary())
@example(b"x = " + b"[" * 1200 + b"]" * 1200 + b"\n")
def test_script_deep_nesting(data: bytes) -> None:
    _script(data)


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


# --- JCS -----------------------------------------------------------------------------------


@settings(FUZZ, max_examples=800)
@given(st.one_of(st.binary(max_size=100), json_values.map(lambda v: json.dumps(v).encode()),
                 st.sampled_from([json.dumps({"a": 1}).encode()]).flatmap(mutated_bytes)))
@example(b'{"a":1,"a":2}')
@example(b"NaN")
@example(b"1e400")
@example(b"[" * 100_000)
@example(b"9" * 5000)
@example(b'"\\ud800"')
@example(b"\xef\xbb\xbf{}")
def test_loads_strict(data: bytes) -> None:
    result = call("jcs.loads_strict", jcs.loads_strict, data)
    if not isinstance(result, ConsoleError):
        # What it accepts, it can canonicalize (or refuse with an EntryRejectedError).
        call("jcs.canonicalize", jcs.canonicalize, result)


@settings(FUZZ, max_examples=600)
@given(json_values)
@example({"\ud800": 1})
@example("\udfff")
@example({1: 2})
@example(b"bytes")
@example(_nested(40))
def test_canonicalize(value: Any) -> None:
    out = call("jcs.canonicalize", jcs.canonicalize, value)
    if not isinstance(out, ConsoleError):
        assert jcs.loads_strict(out) == value  # integer-only values round-trip exactly
        assert jcs.canonicalize(jcs.loads_strict(out)) == out


# --- ledger entries ------------------------------------------------------------------------

ENTRY = encode_entry(7, "ceremony.step.done", {"plan_id": "p", "step": 1, "text": "\x1b\n\u202e"},
                     time=T0, actor="alice", ceremony="c-1")
ENTRY_DOC = json.loads(ENTRY)


@settings(FUZZ, max_examples=600)
@given(st.one_of(
    mutated_bytes(ENTRY),
    mutated_tree(ENTRY_DOC, json_values).map(lambda v: jcs.canonicalize(v, allow_floats=True)
                                             if _jsonable(v) else ENTRY),
    st.binary(max_size=200),
))
@example(ENTRY)
@example(ENTRY.replace(b'"seq":7', b'"seq":true'))
@example(ENTRY.replace(b'"v":1', b'"v":1.0'))
@example(ENTRY.replace(b"2027-01-15T10:00:00Z", b"2027-02-30T10:00:00Z"))
@example(b'{"v":1,"v":1}')
def test_parse_entry(raw: bytes) -> None:
    result = call("ledger.parse_entry", parse_entry, raw)
    if not isinstance(result, ConsoleError):
        assert result.raw == raw and jcs.canonicalize(json.loads(raw)) == raw


def _jsonable(value: Any) -> bool:
    try:
        jcs.canonicalize(value, allow_floats=True)
    except EntryRejectedError:
        return False
    return True


# --- checkpoints and signed notes ----------------------------------------------------------

BODY = f"{ORIGIN}\n42\n{base64.b64encode(bytes(range(32))).decode()}\n"
NOTE = cosign_note(sign_note(BODY, "alice", KEYS["alice"]), "bob", KEYS["bob"])
VERIFIERS = [parse_verifier_key(verifier_key(n, KEYS[n].public_key())) for n in ("alice", "bob")]
text_mutations = st.one_of(
    st.builds(lambda b: b.decode("utf-8", "replace"), mutated_bytes(NOTE.encode())),
    st.text(max_size=120),
    st.lists(st.sampled_from(NOTE.splitlines(keepends=True)), max_size=8).map("".join),
    st.sampled_from(HOSTILE_TEXT).map(lambda h: NOTE.replace("\n\n", "\n" + h + "\n\n", 1)),
)


@settings(FUZZ, max_examples=600)
@given(text_mutations)
@example(NOTE)
@example(NOTE.replace("\n\n", "\n\u2014 alice AAAA\n\n"))
@example(NOTE + "\u2014 mallory " + base64.b64encode(b"\x00" * 68).decode() + "\n")
@example(NOTE + "\u2014 alice " + base64.b64encode(b"\x00" * 68).decode() + "\n")
@example(BODY.replace("42", "1" * 25) + "\n\u2014 a AAAAAAA=\n")
def test_note(note: str) -> None:
    call("ledger.parse_note", parse_note, note)
    result = call("ledger.verify_note", verify_note, note, VERIFIERS, origin=ORIGIN)
    if not isinstance(result, ConsoleError):
        assert result.signers
        body, _ = parse_note(note)
        assert "\x1b" not in body and "\x00" not in body and "\r" not in body


@settings(FUZZ, max_examples=600)
@given(st.one_of(st.builds(lambda b: b.decode("utf-8", "replace"), mutated_bytes(BODY.encode())),
                 st.text(max_size=100)))
@example(BODY)
@example(BODY.replace("42", "18446744073709551616"))
@example(BODY + "ext\x1b\n")
def test_checkpoint_body(body: str) -> None:
    call("ledger.parse_checkpoint_body", parse_checkpoint_body, body)


VKEY = verifier_key("alice", KEYS["alice"].public_key())


@settings(FUZZ, max_examples=600)
@given(st.one_of(st.builds(lambda b: b.decode("utf-8", "replace"), mutated_bytes(VKEY.encode())),
                 st.text(max_size=80)))
@example(VKEY)
@example("a+00000000+" + base64.b64encode(b"\x01" + b"\xff" * 32).decode())
@example("a\u202e+00000000+AQ==")
def test_verifier_key(text: str) -> None:
    call("ledger.parse_verifier_key", parse_verifier_key, text)


# --- officer cards -------------------------------------------------------------------------

CARD = create_card("alice", PASSPHRASE, now=NOW, unsafe_kdf_cost_for_tests=2**10)
CARD_DOC = json.loads(CARD)
UNLOCKED = unlock_card(CARD, PASSPHRASE)


def _card_bytes(value: Any) -> bytes:
    return jcs.canonicalize(value, allow_floats=True) if _jsonable(value) else CARD


@settings(FUZZ, max_examples=300)
@given(st.one_of(mutated_bytes(CARD), mutated_tree(CARD_DOC, json_values).map(_card_bytes)))
@example(CARD)
@example(CARD.replace(b'"alice"', b'"al\\u001bice"'))
@example(json.dumps({**CARD_DOC, "kdf": {**CARD_DOC["kdf"], "n": 2**64}}).encode())
@example(json.dumps({**CARD_DOC, "kdf": {**CARD_DOC["kdf"], "n": 3}}).encode())
@example(json.dumps({**CARD_DOC, "kdf": {**CARD_DOC["kdf"], "r": 0}}).encode())
@example(json.dumps({**CARD_DOC, "kdf": {**CARD_DOC["kdf"], "n": 2**40, "r": 2**20}}).encode())
def test_card(data: bytes) -> None:
    public = call("quorum.read_card_public", read_card_public, data)
    unlocked = call("quorum.unlock_card", unlock_card, data, PASSPHRASE)
    if not isinstance(unlocked, ConsoleError):
        # What unlocks is the card's own keys (any other bytes fail the AES-GCM tag).
        assert not isinstance(public, ConsoleError)
        assert unlocked.public == public and unlocked.name == "alice"


# --- approvals and plans -------------------------------------------------------------------


@dataclass(frozen=True)
class _E:
    type: str
    data: dict[str, Any]
    time: datetime
    seq: int = 0
    ceremony: str | None = None


REGISTRY = OfficerRegistry.from_entries(
    [_E("officer.enrolled", dict(UNLOCKED.public.enrollment_data()), T0)]
    + [_E("officer.enrolled", enrol_data(n), T0) for n in ("bob", "carol")]
)
PLAN = sample_plan().to_dict()
DIGEST = sample_plan().digest
GOOD = sign_approval(UNLOCKED, DIGEST).to_dict()


@settings(FUZZ, max_examples=300)
@given(st.lists(st.one_of(mutated_tree(GOOD, json_values), json_values), max_size=4),
       st.integers(0, 4))
@example([GOOD], 1)
@example([GOOD, GOOD], 2)
@example([{**GOOD, "signature": "!!"}], 1)
@example([{**GOOD, "digest": GOOD["digest"].upper()}], 1)
def test_approval_status(items: list[Any], need: int) -> None:
    approvals = [Approval.from_dict(i) if isinstance(i, dict) else Approval.from_dict({})
                 for i in items]
    status = call("quorum.approval_status", approval_status, DIGEST, approvals, REGISTRY,
                  need=need, now=NOW, expires_at=NOW + timedelta(days=1))
    if not isinstance(status, ConsoleError):
        assert status.have <= 1  # only alice holds a card here


@settings(FUZZ, max_examples=400)
@given(st.one_of(mutated_tree(PLAN, json_values), json_values))
@example(PLAN)
@example({**PLAN, "x": 1.5})
@example({**PLAN, "actions": [{**PLAN["actions"][0], "n": float("nan")}]})
def test_plan_from_stored(plan: Any) -> None:
    """The typed plan parser: a plan either parses into exactly its own canonical bytes (and
    its digest is of those bytes) or is refused with one ConsoleError."""
    parsed = call("ceremony.Plan.from_stored", Plan.from_stored, plan)
    if not isinstance(parsed, ConsoleError):
        typed, digest = parsed
        assert typed.canonical() == jcs.canonicalize(plan)
        assert digest == typed.digest


# --- sealed PIN ----------------------------------------------------------------------------

SEALED = seal_pin(b"123456", [("alice", UNLOCKED.public.x25519_key())], 1, now=NOW)
SEALED_DOC = json.loads(SEALED)


@settings(FUZZ, max_examples=400)
@given(st.one_of(mutated_bytes(SEALED),
                 mutated_tree(SEALED_DOC, json_values).map(
                     lambda v: jcs.canonicalize(v, allow_floats=True) if _jsonable(v) else SEALED)))
@example(SEALED)
@example(json.dumps({**SEALED_DOC, "threshold": 0}).encode())
@example(json.dumps({**SEALED_DOC, "threshold": 2**80}).encode())
def test_sealed_pin(data: bytes) -> None:
    call("quorum.read_sealed_pin", read_sealed_pin, data)
    pin = call("quorum.open_pin", open_pin, data, [UNLOCKED])
    if not isinstance(pin, ConsoleError):
        assert pin == b"123456"


# --- bundles and JWKs ----------------------------------------------------------------------


class _Signer:
    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.alg = "ES256"
        self.jwk = public_jwk(self._key.public_key(), "ES256")
        self.kid = self.jwk["kid"]

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


SIGNER = _Signer()
TOKEN_KEY = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")
BUNDLE = make_bundle(SIGNER, issuer="https://id.example.com", keyset="demo-api", keys=[TOKEN_KEY],
                     seq=1, prev=None, now=NOW, lifetime=timedelta(days=30))
BUNDLE2 = make_bundle(SIGNER, issuer="https://id.example.com", keyset="demo-api",
                      keys=[TOKEN_KEY], seq=2, prev=hashlib.sha256(BUNDLE).hexdigest(),
                      now=NOW, lifetime=timedelta(days=30))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def bundle_parts(draw: st.DrawFn) -> bytes:
    """A bundle with its header or claims JSON edited (signature then no longer matches)."""
    head, claims, sig = BUNDLE.split(b".")
    which = draw(st.integers(0, 1))
    part = [head, claims][which]
    doc = json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))
    edited = draw(mutated_tree(doc, json_values))
    raw = jcs.canonicalize(edited, allow_floats=True) if _jsonable(edited) else part
    parts = [head, claims, sig]
    parts[which] = _b64url(raw).encode()
    return b".".join(parts)


@settings(FUZZ, max_examples=600)
@given(st.one_of(mutated_bytes(BUNDLE), bundle_parts(), st.binary(max_size=100)),
       st.sampled_from([None, BUNDLE, b"x.y.z", b""]))
@example(BUNDLE2, BUNDLE)
@example(BUNDLE, None)
@example(b"..", None)
@example(b"\xff.\xff.\xff", b"\xff")
def test_verify_bundle(token: bytes, previous: bytes | None) -> None:
    result = call("exports.verify_bundle", verify_bundle, token, trust=SIGNER.jwk,
                  previous=previous, now=NOW)
    if not isinstance(result, ConsoleError):
        assert token in (BUNDLE, BUNDLE2)
    call("exports.verify_jws", verify_jws, token, SIGNER.jwk, allowed_algs=["ES256"])


@settings(FUZZ, max_examples=300)
@given(st.one_of(mutated_tree(TOKEN_KEY, json_values), mutated_tree(SIGNER.jwk, json_values)),
       st.booleans())
@example(TOKEN_KEY, False)
@example({**TOKEN_KEY, "d": "AAAA"}, False)
@example({**TOKEN_KEY, "x": "!!!"}, True)
@example({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "RS256", "use": "sig"}, True)
def test_jwk(jwk: dict[str, Any], as_trust: bool) -> None:
    clean = call("exports.sanitize_public_jwk", sanitize_public_jwk, jwk)
    if not isinstance(clean, ConsoleError):
        assert not {"d", "p", "q", "dp", "dq", "qi", "oth", "k"} & set(clean)
    if as_trust:
        call("exports.verify_bundle(trust)", verify_bundle, BUNDLE, trust=jwk, now=NOW)


# --- ledger replay: plans (journal) and keys (lifecycle) -----------------------------------

KEY_JWK = TOKEN_KEY
HISTORY: list[dict[str, Any]] = [
    {"type": "ceremony.planned", "data": {"plan": PLAN, "digest": DIGEST.hex()}},
    {"type": "ceremony.approved", "data": {"plan_id": "p-1", **GOOD}},
    {"type": "ceremony.step.intent", "data": {"plan_id": "p-1", "step": 1, "action": "reconcile"}},
    {"type": "ceremony.step.done", "data": {"plan_id": "p-1", "step": 1, "action": "reconcile"}},
    {"type": "key.generated", "data": {"keyset": "demo-api", "kid": KEY_JWK["kid"], "alg": "ES256",
                                       "label": "l", "cka_id": "00", "purpose": "token",
                                       "jwk": KEY_JWK}},
    {"type": "key.state_changed", "data": {"keyset": "demo-api", "kid": KEY_JWK["kid"],
                                           "from": "generated", "to": "published", "reason": ""}},
    {"type": "policy.changed", "data": {"sha256": "00", "policy": POLICY_DICT}},
    {"type": "ceremony.completed", "data": {"plan_id": "p-1"}},
]


def _entries(history: list[Any]) -> list[_E]:
    out = []
    for i, item in enumerate(history):
        if isinstance(item, dict) and isinstance(item.get("type"), str) and isinstance(
                item.get("data"), dict):
            out.append(_E(item["type"], item["data"], T0 + timedelta(minutes=i), i, "p-1"))
    return out


history_mutations = st.one_of(
    mutated_tree(HISTORY, json_values),
    st.permutations(HISTORY).map(list),
)


@settings(FUZZ, max_examples=300)
@given(history_mutations)
@example(HISTORY)
def test_lifecycle_replay(history: list[Any]) -> None:
    call("lifecycle.replay", replay, _entries(history))


@settings(FUZZ, max_examples=600)
@given(history_mutations)
@example(HISTORY)
@example([{"type": "ceremony.planned", "data": {}}])
@example([HISTORY[0], {"type": "ceremony.step.done", "data": {"plan_id": "p-1", "step": "x"}}])
def test_replay_plans(history: list[Any]) -> None:
    call("ceremony.replay_plans", replay_plans, _entries(history))


def test_hostile_text_is_data_in_entries() -> None:
    """Every hostile string is stored escaped by JCS and parsed back to the same text."""
    for i, text in enumerate(HOSTILE_TEXT):
        raw = encode_entry(i, "ceremony.note", {"text": text}, time=T0, actor="alice")
        assert not any(b < 0x20 for b in raw), text[:20]
        assert parse_entry(raw).data["text"] == text
    RUNS["ledger.encode_entry(hostile)"] += len(HOSTILE_TEXT)


