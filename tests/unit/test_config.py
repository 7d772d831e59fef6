"""ceremony.toml and policy.toml: strict parsing, one-line errors with file:line, round trips."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from console.config import (
    HsmConfig,
    Officer,
    Policy,
    Quorum,
    QuorumRule,
    WorkspaceConfig,
    c_max,
    format_duration_text,
    load_policy,
    load_workspace_config,
    parse_duration,
    render_workspace_config,
)
from console.errors import ConfigError

DATA = Path(__file__).parent / "data" / "config"


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("20m", timedelta(minutes=20)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("0s", timedelta(0)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration_text(expected)) == expected


@pytest.mark.parametrize("text", ["", "90", "1.5h", "-1d", "1m1h", "1w", "1 d", "d", "1D", "1h1h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=3650 * 86400))
def test_duration_text_round_trips(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration_text(delta)) == delta


# --- policy.toml -------------------------------------------------------------------------


def test_sample_policy_loads_with_defaults() -> None:
    policy = load_policy(DATA / "policy.toml")
    api = policy.keyset("api-prod")
    assert api.alg == "ES256" and api.rsa_bits is None and api.curve == "P-256"
    assert api.max_token_lifetime == timedelta(days=30)
    assert api.clock_skew == timedelta(minutes=1)
    # The largest cache is 1 h, but kong's 3 d install + its 1 h cache is the slowest path.
    assert c_max(api) == timedelta(days=3, hours=1)
    legacy = policy.keyset("legacy")
    assert legacy.rsa_bits == 4096
    assert legacy.cryptoperiod == timedelta(days=90)
    assert legacy.margin == timedelta(days=1)
    assert legacy.destruction_wait == timedelta(days=30)
    assert legacy.c_max == timedelta(days=1, hours=1)
    with pytest.raises(ConfigError, match="no keyset 'nope'"):
        policy.keyset("nope")


def test_policy_dict_is_canonical_integers_and_round_trips() -> None:
    policy = load_policy(DATA / "policy.toml")
    data = policy.to_dict()

    def walk(value: object) -> None:
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(data)
    assert data["keysets"]["api-prod"]["max_token_lifetime"] == 30 * 86400
    assert Policy.from_dict(data) == policy
    assert len(policy.sha256()) == 64


def test_policy_from_dict_refuses_bad_values() -> None:
    data = load_policy(DATA / "policy.toml").to_dict()
    data["keysets"]["api-prod"]["margin"] = 60
    with pytest.raises(ConfigError) as info:
        Policy.from_dict(data)
    assert "margin" in info.value.user_message()
    data["keysets"]["api-prod"]["margin"] = 1.5
    with pytest.raises(ConfigError):
        Policy.from_dict(data)


GOOD_KEYSET = """\
[keysets.api]
issuer = "https://id.example.com"
alg = "ES256"
max_token_lifetime = "1h"
"""
GOOD_CONSUMER = """
[[keysets.api.consumers]]
name = "edge"
type = "envoy"
cache_lifetime = "10m"
"""


@dataclass(frozen=True)
class Bad:
    id: str
    text: str
    line: int
    says: str  # a fragment of what is wrong
    fix: str  # a fragment of what to write instead


BAD_POLICIES = [
    Bad("unknown keyset key", GOOD_KEYSET + 'lifetime = "1h"\n', 5, "unknown key 'lifetime'",
        "allowed keys"),
    Bad("unknown top-level table", "[keyset.api]\nissuer = 'x'\n", 1, "unknown key 'keyset'",
        "allowed keys: keysets"),
    Bad("alg none", GOOD_KEYSET.replace('"ES256"', '"none"'), 3, "unsigned", "use one of"),
    Bad("alg HS256", GOOD_KEYSET.replace('"ES256"', '"HS256"'), 3, "HMAC", "use one of"),
    Bad("alg ES256K", GOOD_KEYSET.replace('"ES256"', '"ES256K"'), 3, "secp256k1", "use one of"),
    Bad("curve P-224", GOOD_KEYSET + 'curve = "P-224"\n', 5, "P-224", "ES256 (P-256)"),
    Bad("curve secp256k1", GOOD_KEYSET + 'curve = "secp256k1"\n', 5, "secp256k1", "P-256"),
    Bad("alg/curve mismatch", GOOD_KEYSET + 'curve = "P-384"\n', 5,
        "ES256 does not use curve P-384", 'curve = "P-256"'),
    Bad("RSA 1024", GOOD_KEYSET.replace('"ES256"', '"RS256"') + "rsa_bits = 1024\n", 5,
        "RSA-1024 is too weak", "rsa_bits = 3072"),
    Bad("rsa_bits on EC", GOOD_KEYSET + "rsa_bits = 3072\n", 5, "non-RSA alg ES256",
        "remove rsa_bits"),
    Bad("rsa_bits as string", GOOD_KEYSET.replace('"ES256"', '"PS256"') + 'rsa_bits = "3072"\n',
        5, "whole number", "rsa_bits = 3072"),
    Bad("zero cryptoperiod", GOOD_KEYSET + 'cryptoperiod = "0s"\n', 5, "cryptoperiod 0s is too "
        "short", 'cryptoperiod = "90d"'),
    Bad("margin under 1h", GOOD_KEYSET + 'margin = "30m"\n', 5, "margin 30m is too short",
        'margin = "1h"'),
    Bad("negative duration", GOOD_KEYSET + 'clock_skew = "-1m"\n', 5, "not a duration",
        "units d h m s"),
    Bad("float duration", GOOD_KEYSET + "clock_skew = 1.5\n", 5, "must be a duration string",
        'clock_skew = "90d"'),
    Bad("integer duration", GOOD_KEYSET + "margin = 3600\n", 5, "must be a duration string",
        "units d, h, m, s"),
    Bad("bad keyset name", GOOD_KEYSET.replace("[keysets.api]", "[keysets.API_Prod]"), 1,
        "keyset name 'API_Prod'", "lowercase letters"),
    Bad("missing issuer", "[keysets.api]\nalg = \"ES256\"\nmax_token_lifetime = \"1h\"\n", 1,
        "has no 'issuer'", "add issuer"),
    Bad("auth0 on EC keyset", GOOD_KEYSET + GOOD_CONSUMER.replace('"envoy"', '"auth0"'), 8,
        "Auth0 client credentials takes RSA keys only", 'alg = "RS256"'),
    Bad("apim on EdDSA keyset", GOOD_KEYSET.replace('"ES256"', '"EdDSA"')
        + GOOD_CONSUMER.replace('"envoy"', '"apim"'), 8,
        "Azure APIM validate-jwt takes RSA keys only", "RS256"),
    Bad("unknown consumer type", GOOD_KEYSET + GOOD_CONSUMER.replace('"envoy"', '"traefik"'), 8,
        "consumer type 'traefik'", "use one of envoy"),
    Bad("unknown consumer key", GOOD_KEYSET + GOOD_CONSUMER + 'ttl = "1h"\n', 10,
        "unknown key 'ttl'", "install_delay"),
    Bad("second consumer bad cache", GOOD_KEYSET + GOOD_CONSUMER
        + GOOD_CONSUMER.replace('"edge"', '"mesh"').replace('"10m"', '"10 min"'), 14,
        "cache_lifetime '10 min' is not a duration", "1h30m"),
    Bad("duplicate consumer", GOOD_KEYSET + GOOD_CONSUMER + GOOD_CONSUMER, 12,
        "listed twice", "distinct name"),
    Bad("cryptoperiod shorter than propagation", GOOD_KEYSET + 'cryptoperiod = "2d"\n'
        'bundle_lifetime = "3d"\n' + GOOD_CONSUMER.replace('cache_lifetime = "10m"',
                                                           'cache_lifetime = "2d"'),
        5, "slowest consumer (edge: 2d)", "lengthen cryptoperiod"),
    Bad("bundle lifetime shorter than cryptoperiod", GOOD_KEYSET + 'bundle_lifetime = "30d"\n',
        5, "bundles would expire between ceremonies", 'bundle_lifetime = "120d"'),
    Bad("empty policy", "", 1, "no keysets", "[keysets.<name>]"),
    Bad("malformed TOML", GOOD_KEYSET + "margin = \n", 5, "malformed TOML", "fix the TOML"),
    Bad("duplicate key TOML", GOOD_KEYSET + 'issuer = "b"\n', 5, "malformed TOML",
        "fix the TOML"),
    Bad("HS384 in inline table", '[keysets]\napi = { issuer = "x", alg = "HS384", '
        'max_token_lifetime = "1h" }\n', 2, "HMAC", "use one of"),
]


@pytest.mark.parametrize("case", BAD_POLICIES, ids=[c.id for c in BAD_POLICIES])
def test_bad_policy_gives_one_line_with_file_line_and_fix(case: Bad, tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(case.text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = info.value.user_message()
    assert "\n" not in message
    assert message.startswith(f"{path}:{case.line}: "), message
    what, _, fix = message.partition(" — ")
    assert case.says in what, message
    assert case.fix in fix, message


def test_policy_file_missing_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_policy(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in info.value.user_message()


def test_policy_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b'[keysets.api]\nissuer = "\xff"\n')
    with pytest.raises(ConfigError, match=r":2: not valid UTF-8"):
        load_policy(path)


# --- ceremony.toml -----------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _officer(name: str) -> Officer:
    ed = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw,
                                                                        PublicFormat.Raw)
    xk = x25519.X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw,
                                                                      PublicFormat.Raw)
    return Officer(name, ed, xk)


def test_sample_workspace_loads() -> None:
    cfg = load_workspace_config(DATA / "ceremony.toml")
    assert cfg.org == "example" and cfg.rehearsal is True
    assert cfg.origin == "example/ceremony-ledger/6f1c2b1e-4a53-4c1f-9a8e-3f0d2c7b9a10"
    assert cfg.quorum.routine == QuorumRule(2, 3)
    assert cfg.quorum.destructive == QuorumRule(3, 3)
    assert cfg.quorum.emergency == QuorumRule(1, 3)
    assert [o.name for o in cfg.officers] == ["alice", "bob", "carol"]
    assert all(len(o.ed25519) == 32 and len(o.x25519) == 32 for o in cfg.officers)
    assert cfg.hsm.softhsm_conf == "softhsm/softhsm2.conf"
    assert cfg.hsm.module_path().name == "libsofthsm2.so"


def test_p11kit_module_resolves() -> None:
    assert HsmConfig("p11-kit", token_label="x").module_path().name == "p11-kit-client.so"
    with pytest.raises(ConfigError, match="does not exist"):
        HsmConfig("/nowhere/libnothing.so", token_label="x").module_path()


names = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,31}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(
    org=st.text(alphabet="abcxyz0123456789.-_", min_size=1, max_size=64),
    rehearsal=st.booleans(),
    label=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                  min_size=1, max_size=8),
    officer_names=st.lists(names, min_size=3, max_size=5, unique=True),
    uri=st.none() | st.just("pkcs11:token=demo;object=x"),
)
def test_rendered_workspace_round_trips(
    tmp_path_factory: pytest.TempPathFactory, org: str, rehearsal: bool, label: str,
    officer_names: list[str], uri: str | None,
) -> None:
    cfg = WorkspaceConfig(
        org=org, id="6f1c2b1e-4a53-4c1f-9a8e-3f0d2c7b9a10", rehearsal=rehearsal,
        hsm=HsmConfig("softhsm", token_label=label, softhsm_conf="softhsm/softhsm2.conf",
                      uri=uri),
        quorum=Quorum(QuorumRule(2, 3), QuorumRule(3, 3), QuorumRule(1, 3)),
        officers=tuple(_officer(n) for n in officer_names),
    )
    path = tmp_path_factory.mktemp("ws") / "ceremony.toml"
    path.write_text(render_workspace_config(cfg), encoding="utf-8")
    assert load_workspace_config(path) == cfg


GOOD_WS = """\
[workspace]
org = "example"
id = "6f1c2b1e-4a53-4c1f-9a8e-3f0d2c7b9a10"

[hsm]
module = "softhsm"
token_label = "demo"

[quorum]
routine = "2/3"
destructive = "3/3"
emergency = "1/3"
"""
OFFICER = """
[[officers]]
name = "{name}"
ed25519 = "{ed}"
x25519 = "{x}"
"""


def _officer_toml(name: str = "alice", ed: str | None = None, x: str | None = None) -> str:
    o = _officer("x")
    return OFFICER.format(name=name, ed=ed or _b64(o.ed25519), x=x or _b64(o.x25519))


BAD_WORKSPACES = [
    Bad("unknown workspace key", GOOD_WS.replace("[workspace]\n", "[workspace]\nname = 'x'\n"),
        2, "unknown key 'name'", "allowed keys: org, id, rehearsal"),
    Bad("id not a uuid", GOOD_WS.replace("6f1c2b1e-4a53-4c1f-9a8e-3f0d2c7b9a10", "abc"), 3,
        "is not a UUID", "ceremony init"),
    Bad("rehearsal as string", GOOD_WS.replace("[workspace]\n",
                                               "[workspace]\nrehearsal = \"yes\"\n"),
        2, "rehearsal must be true or false", "rehearsal = true"),
    Bad("both label and serial", GOOD_WS.replace('token_label = "demo"',
                                                 'token_label = "demo"\ntoken_serial = "1"'),
        5, "exactly one of token_label and token_serial", "not both"),
    Bad("relative module", GOOD_WS.replace('module = "softhsm"', 'module = "lib.so"'), 6,
        "not an absolute path", "/absolute/path"),
    Bad("quorum M > N", GOOD_WS.replace('routine = "2/3"', 'routine = "4/3"'), 10,
        "4/3 is impossible", "1 ≤ M ≤ N"),
    Bad("quorum inline M > N", GOOD_WS.replace('destructive = "3/3"',
                                               "destructive = { m = 0, n = 3 }"), 11,
        "0/3 is impossible", "1 ≤ M ≤ N"),
    Bad("quorum garbage", GOOD_WS.replace('emergency = "1/3"', 'emergency = "one"'), 12,
        "is not M/N", '"2/3"'),
    Bad("officer name with space", GOOD_WS + _officer_toml("alice smith"), 15,
        "officer name 'alice smith' is not allowed", "1-32 letters"),
    Bad("officer name too long", GOOD_WS + _officer_toml("a" * 33), 15, "is not allowed",
        "1-32 letters"),
    Bad("officer key not 32 bytes", GOOD_WS + _officer_toml(ed=_b64(b"x" * 31)), 16,
        "ed25519 key is 31 bytes", "raw 32 bytes"),
    Bad("officer key standard base64", GOOD_WS + _officer_toml(x="+/+/" * 10 + "abc"), 17,
        "x25519 key is not base64url", "base64url"),
    Bad("duplicate officer", GOOD_WS + _officer_toml("bob") + _officer_toml("bob"), 20,
        "listed twice", "one [[officers]]"),
    Bad("quorum larger than officers", GOOD_WS + _officer_toml("bob"), 10,
        "routine needs 2 officers but only 1", "add [[officers]]"),
    Bad("softhsm_conf escapes workspace", GOOD_WS.replace(
        'token_label = "demo"', 'token_label = "demo"\nsofthsm_conf = "../x.conf"'), 8,
        "inside the workspace", "softhsm/softhsm2.conf"),
    Bad("missing quorum", GOOD_WS.split("[quorum]")[0], 1, "has no 'quorum'",
        "add a [quorum] table"),
]


@pytest.mark.parametrize("case", BAD_WORKSPACES, ids=[c.id for c in BAD_WORKSPACES])
def test_bad_workspace_gives_one_line_with_file_line_and_fix(case: Bad, tmp_path: Path) -> None:
    path = tmp_path / "ceremony.toml"
    path.write_text(case.text)
    with pytest.raises(ConfigError) as info:
        load_workspace_config(path)
    message = info.value.user_message()
    assert "\n" not in message
    assert message.startswith(f"{path}:{case.line}: "), message
    what, _, fix = message.partition(" — ")
    assert case.says in what, message
    assert case.fix in fix, message


def test_control_characters_in_messages_are_inert(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[keysets."a\\u001b[31m"]\nissuer = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert "\x1b" not in info.value.user_message()
