"""Lifecycle: replay, timing rules with exact worked examples, plans, calendar, timeline, status."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from console.config import KeysetPolicy, Policy, load_policy
from console.errors import (
    ClockError,
    ConfigError,
    LifecycleError,
    RehearsalOnlyError,
    TransitionRefusedError,
)
from console.lifecycle import (
    KeysetState,
    KeyState,
    check_invariants,
    check_transition,
    earliest_activation,
    earliest_destruction,
    earliest_unpublish,
    effective_now,
    jwk_thumbprint,
    plan_emergency,
    plan_rotation,
    replay,
    replay_keys,
    rollover_gaps,
    rollover_timeline,
    rotation_due,
    status_json,
    trusted_keys,
    warnings,
)
from tests.unit.lifecycle_helpers import Entry, LedgerBuilder, t

DATA = Path(__file__).parent / "data" / "config"
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
S = KeyState


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(DATA / "policy.toml")


@pytest.fixture(scope="module")
def api(policy: Policy) -> KeysetPolicy:
    return policy.keyset("api-prod")


def test_thumbprint_matches_rfc7638_vector() -> None:
    path = VECTORS / "rfc7638.json"
    vector = json.loads(path.read_text())
    assert jwk_thumbprint(vector["jwk"]) == vector["thumbprint_sha256_b64url"]


def genesis(b: LedgerBuilder, when: str) -> tuple[str, str]:
    """Genesis as the script does it: A signs at once, B is published as the successor."""
    a = b.generate(when)
    b.move(a, "published", when)
    b.move(a, "active", when)
    nxt = b.generate(when)
    b.move(nxt, "published", when)
    return a, nxt


# --- worked examples with exact times ------------------------------------------------------


def test_worked_example_activation_and_grace(api: KeysetPolicy) -> None:
    """Caches 1 h and 20 min, a partner installing by hand within 3 d (behind a 1 h cache),
    margin 1 d: activation no earlier than 4 d 1 h after publication. 30-day tokens, skew 1 min:
    unpublish no earlier than 31 d 1 min after retirement."""
    b = LedgerBuilder()
    a, nxt = genesis(b, "2027-01-15T10:00:00Z")
    state = replay_keys(b.entries)["api-prod"]
    assert earliest_activation(state.key(nxt), api) == t("2027-01-19T11:00:00Z")

    with pytest.raises(TransitionRefusedError) as info:
        check_transition(state, nxt, S.ACTIVE, api, t("2027-01-19T10:59:59Z"), paired_with=a)
    err = info.value
    assert err.rule == "activation-delay"
    assert err.earliest == t("2027-01-19T11:00:00Z")
    assert err.user_message() == (
        f"activate {nxt[:6]}…: refused until 2027-01-19T11:00:00Z (published "
        "2027-01-15T10:00:00Z + slowest consumer kong-partners 3 d 1 h + margin 1 d)"
        " — plan it for 2027-01-19T11:00:00Z or later"
    )
    check_transition(state, nxt, S.ACTIVE, api, t("2027-01-19T11:00:00Z"), paired_with=a)

    b.move(a, "retired", "2027-04-15T10:00:00Z")
    b.move(nxt, "active", "2027-04-15T10:00:00Z")
    state = replay_keys(b.entries)["api-prod"]
    assert earliest_unpublish(state.key(a), api) == t("2027-05-16T10:01:00Z")
    with pytest.raises(TransitionRefusedError) as info:
        check_transition(state, a, S.ARCHIVED, api, t("2027-05-16T10:00:59Z"))
    assert info.value.rule == "retirement-grace"
    assert info.value.earliest == t("2027-05-16T10:01:00Z")
    assert "token lifetime 30 d + clock skew 1 min + margin 1 d" in info.value.message
    check_transition(state, a, S.ARCHIVED, api, t("2027-05-16T10:01:00Z"))

    b.move(a, "archived", "2027-05-20T00:00:00Z")
    state = replay_keys(b.entries)["api-prod"]
    assert earliest_destruction(state.key(a), api) == t("2027-06-19T00:00:00Z")
    with pytest.raises(TransitionRefusedError) as info:
        check_transition(state, a, S.DESTROYED, api, t("2027-06-18T23:59:59Z"))
    assert info.value.rule == "destruction-wait"
    check_transition(state, a, S.DESTROYED, api, t("2027-06-19T00:00:00Z"))


def test_compromised_key_counts_as_archived_from_compromise(api: KeysetPolicy) -> None:
    b = LedgerBuilder()
    a, nxt = genesis(b, "2027-01-15T10:00:00Z")
    b.move(a, "compromised", "2027-02-01T00:00:00Z")
    b.move(nxt, "active", "2027-02-01T00:00:00Z")
    key = replay_keys(b.entries)["api-prod"].key(a)
    assert key.archived_at == t("2027-02-01T00:00:00Z")
    assert earliest_destruction(key, api) == t("2027-03-03T00:00:00Z")


# --- refusals that protect invariants -----------------------------------------------------


def test_refusals_name_rule(api: KeysetPolicy) -> None:
    b = LedgerBuilder()
    a, nxt = genesis(b, "2027-01-15T10:00:00Z")
    state = replay_keys(b.entries)["api-prod"]
    later = t("2027-03-01T00:00:00Z")
    cases: list[tuple[str, KeyState, str]] = [
        (nxt, S.ACTIVE, "one-active"),  # a is active and not retired with it
        (a, S.RETIRED, "successor-required"),
        (a, S.SUSPENDED, "successor-required"),
        (nxt, S.RETIRED, "state-table"),
        (a, S.PUBLISHED, "state-table"),
    ]
    for kid, to, rule in cases:
        with pytest.raises(TransitionRefusedError) as info:
            check_transition(state, kid, to, api, later)
        assert info.value.rule == rule, (kid, to)
        assert "\n" not in info.value.user_message()
    with pytest.raises(TransitionRefusedError) as info:
        check_transition(state, a, S.COMPROMISED, api, t("2027-01-01T00:00:00Z"))
    assert info.value.rule == "clock"
    assert info.value.earliest == t("2027-01-15T10:00:00Z")
    # Compromise never waits and never needs a pair.
    check_transition(state, a, S.COMPROMISED, api, later)

    b.move(a, "retired", "2027-04-15T10:00:00Z")
    b.move(nxt, "active", "2027-04-15T10:00:00Z")
    state = replay_keys(b.entries)["api-prod"]
    with pytest.raises(TransitionRefusedError) as info:
        check_transition(state, a, S.ACTIVE, api, t("2027-05-01T00:00:00Z"))
    assert info.value.rule == "state-table"
    assert "never becomes active again" in info.value.message


def test_emergency_waives_activation_delay_only_when_asked(api: KeysetPolicy) -> None:
    b = LedgerBuilder()
    a, _ = genesis(b, "2027-01-15T10:00:00Z")
    fresh = b.generate("2027-01-16T00:00:00Z")
    b.move(fresh, "published", "2027-01-16T00:00:00Z")
    state = replay_keys(b.entries)["api-prod"]
    now = t("2027-01-16T01:00:00Z")
    with pytest.raises(TransitionRefusedError):
        check_transition(state, fresh, S.ACTIVE, api, now, paired_with=a)
    check_transition(state, fresh, S.ACTIVE, api, now, paired_with=a, emergency=True)
    check_transition(state, a, S.COMPROMISED, api, now, paired_with=fresh)


# --- replay validation --------------------------------------------------------------------


def test_replay_refuses_wrong_from_naming_seq() -> None:
    b = LedgerBuilder()
    a = b.generate("2027-01-15T10:00:00Z")
    b.add("key.state_changed", "2027-01-15T10:00:00Z",
          {"keyset": "api-prod", "kid": a, "from": "published", "to": "active", "reason": ""})
    with pytest.raises(LifecycleError, match=r"ledger entry 1 \(key.state_changed\): .* is "
                       r"generated, not published"):
        replay(b.entries)


def test_replay_refuses_illegal_transition_and_kid_reuse() -> None:
    b = LedgerBuilder()
    a, nxt = genesis(b, "2027-01-15T10:00:00Z")
    b.add("key.state_changed", "2027-01-16T00:00:00Z",
          {"keyset": "api-prod", "kid": nxt, "from": "published", "to": "retired", "reason": ""})
    with pytest.raises(LifecycleError, match="ledger entry 5"):
        replay(b.entries)

    b = LedgerBuilder()
    a = b.generate("2027-01-15T10:00:00Z")
    first = b.entries[0]
    # Same kid, other material: the other key's coordinates under this kid.
    other_entry = LedgerBuilder()
    other_kid = other_entry.generate("2027-01-15T10:00:00Z")
    forged = dict(other_entry.entries[0].data)
    forged["kid"] = a
    entries = [first, Entry(1, "key.generated", first.time, forged)]
    with pytest.raises(LifecycleError, match="not the RFC 7638 thumbprint"):
        replay(entries)
    assert other_kid != a
    # The very same key generated twice.
    entries = [first, Entry(1, "key.generated", first.time, first.data)]
    with pytest.raises(LifecycleError, match="generated before"):
        replay(entries)


def test_replay_refuses_private_members() -> None:
    b = LedgerBuilder()
    b.generate("2027-01-15T10:00:00Z")
    data = dict(b.entries[0].data)
    data["jwk"] = {**data["jwk"], "d": "secret"}
    with pytest.raises(LifecycleError, match="non-public members d"):
        replay([Entry(0, "key.generated", b.entries[0].time, data)])


def test_replay_reads_policy_changes(policy: Policy) -> None:
    b = LedgerBuilder()
    b.add("policy.changed", "2027-01-01T00:00:00Z",
          {"sha256": policy.sha256(), "policy": policy.to_dict()})
    result = replay(b.entries)
    assert result.policy == policy
    assert result.last_time == t("2027-01-01T00:00:00Z")
    bad = policy.to_dict()
    bad["keysets"]["api-prod"]["alg"] = "HS256"
    b.add("policy.changed", "2027-01-02T00:00:00Z", {"sha256": "x", "policy": bad})
    with pytest.raises(LifecycleError, match="ledger entry 1"):
        replay(b.entries)


def test_invariants() -> None:
    b = LedgerBuilder()
    a, nxt = genesis(b, "2027-01-15T10:00:00Z")
    check_invariants(replay_keys(b.entries)["api-prod"])
    b.move(a, "compromised", "2027-01-20T00:00:00Z")
    with pytest.raises(LifecycleError, match="no active key"):
        check_invariants(replay_keys(b.entries)["api-prod"])
    b.move(nxt, "active", "2027-01-20T00:00:00Z")
    with pytest.raises(LifecycleError, match="no published successor"):
        check_invariants(replay_keys(b.entries)["api-prod"])


# --- plans ---------------------------------------------------------------------------------


def run_plan(b: LedgerBuilder, plan_actions: list[tuple[str, str | None, str | None]],
             when: str) -> None:
    """Carry out a plan on the builder the way the ceremony engine would."""
    made: dict[str, str] = {}
    for action, kid, new in plan_actions:
        target = kid or made.get(new or "")
        if action == "generate":
            assert new is not None
            made[new] = b.generate(when)
            continue
        assert target is not None
        to = {"publish": "published", "activate": "active", "retire": "retired",
              "unpublish": "archived", "compromise": "compromised"}[action]
        b.move(target, to, when)


def test_year_of_quarterly_rotations_has_no_gap(api: KeysetPolicy, policy: Policy) -> None:
    b = LedgerBuilder()
    start = t("2027-01-15T10:00:00Z")
    for quarter in range(5):
        now = start + timedelta(days=91 * quarter)
        state = replay_keys(b.entries).get("api-prod")
        plan = plan_rotation(state or KeysetState("api-prod"), api, now)
        steps = [(a.action, a.kid, a.new_key) for a in plan.actions]
        # check every existing-key step against the rules before carrying it out
        current = state or KeysetState("api-prod")
        for a in plan.actions:
            if a.kid is not None and a.action == "activate" and current.active_key:
                check_transition(current, a.kid, S.ACTIVE, api, now,
                                 paired_with=current.active_key.kid)
        run_plan(b, steps, now.isoformat())
        final = replay_keys(b.entries)["api-prod"]
        check_invariants(final)
        if quarter >= 1:
            assert [a.action for a in plan.actions][:2] == ["retire", "activate"]
    final = replay_keys(b.entries)["api-prod"]
    assert rollover_gaps(final, api) == []
    # Retired keys were unpublished once their 31 d 1 min grace had passed.
    assert len(final.in_state(S.ARCHIVED)) == 3
    assert len(final.in_state(S.RETIRED)) == 1
    now = start + timedelta(days=91 * 4 + 1)
    # Nothing to fix, only old keys to destroy in a destructive-class ceremony.
    api_warnings = [w for w in warnings({"api-prod": final}, policy, now)
                    if w.startswith("api-prod")]
    assert len(api_warnings) == 2
    assert all(w.endswith("— run key-destruction") for w in api_warnings)
    # The next rotation is due 90 d after the last activation.
    due = rotation_due(final, api, now)
    assert due.next_due == start + timedelta(days=91 * 4 + 90)
    assert due.latest_ceremony == due.next_due and not due.overdue


def test_plan_defers_activation_until_allowed(api: KeysetPolicy) -> None:
    b = LedgerBuilder()
    a, nxt = genesis(b, "2027-01-15T10:00:00Z")
    state = replay_keys(b.entries)["api-prod"]
    plan = plan_rotation(state, api, t("2027-01-17T00:00:00Z"))
    assert plan.actions == ()
    assert [(d.action, d.kid, d.earliest) for d in plan.deferred] == [
        ("activate", nxt, t("2027-01-19T11:00:00Z"))
    ]
    plan = plan_rotation(state, api, t("2027-01-19T11:00:00Z"))
    assert [(x.action, x.kid or x.new_key) for x in plan.actions] == [
        ("retire", a), ("activate", nxt), ("generate", "new-1"), ("publish", "new-1")]


def test_forced_early_activation_shows_gap_for_slow_consumer(api: KeysetPolicy) -> None:
    b = LedgerBuilder()
    a, nxt = genesis(b, "2027-01-15T10:00:00Z")
    # Forced: activated 2 hours after publication (the rules would refuse this).
    b.move(a, "retired", "2027-01-15T12:00:00Z")
    b.move(nxt, "active", "2027-01-15T12:00:00Z")
    state = replay_keys(b.entries)["api-prod"]
    gaps = rollover_gaps(state, api)
    assert [(g.consumer, g.kid, g.start, g.end, g.cause) for g in gaps] == [
        ("kong-partners", nxt, t("2027-01-15T12:00:00Z"), t("2027-01-18T11:00:00Z"),
         "activated-too-early")
    ]
    assert "kong-partners rejects valid tokens" in gaps[0].describe()
    timeline = rollover_timeline(state, api)
    kong = timeline["kong-partners"]
    at_switch = next(s for s in kong if s.start == t("2027-01-15T12:00:00Z"))
    assert at_switch.signer == nxt and nxt not in at_switch.kids
    assert trusted_keys(state, api.consumers[2], t("2027-01-18T11:00:00Z")) == {a, nxt}
    assert trusted_keys(state, api.consumers[0], t("2027-01-15T12:00:00Z")) == {a, nxt}


def test_early_unpublish_shows_gap(api: KeysetPolicy) -> None:
    b = LedgerBuilder()
    a, nxt = genesis(b, "2027-01-15T10:00:00Z")
    b.move(a, "retired", "2027-04-15T10:00:00Z")
    b.move(nxt, "active", "2027-04-15T10:00:00Z")
    b.move(a, "archived", "2027-04-20T10:00:00Z")  # 30-day tokens still valid
    gaps = rollover_gaps(replay_keys(b.entries)["api-prod"], api)
    assert {g.cause for g in gaps} == {"unpublished-too-early"}
    assert {g.end for g in gaps} == {t("2027-05-15T10:01:00Z")}
    assert len(gaps) == 3


def test_emergency_plan(api: KeysetPolicy) -> None:
    b = LedgerBuilder()
    a, nxt = genesis(b, "2027-01-15T10:00:00Z")
    state = replay_keys(b.entries)["api-prod"]
    now = t("2027-01-16T10:00:00Z")
    plan = plan_emergency(state, api, now)
    assert [(x.action, x.kid or x.new_key, x.waived) for x in plan.actions] == [
        ("compromise", a, None), ("activate", nxt, "activation-delay"),
        ("generate", "new-1", None), ("publish", "new-1", None)]
    # kong-partners has had the successor for 1 d of its 3 d 1 h: it rejects new tokens until
    # 2027-01-18T11:00:00Z; the caches have it already.
    assert "kong-partners rejects tokens of the new signing key until 2027-01-18T11:00:00Z" \
        in plan.notes
    assert "mesh may still trust " + a[:6] + "… until 2027-01-16T10:20:00Z" in plan.notes
    # The engine checks each step with the emergency waiver.
    check_transition(state, a, S.COMPROMISED, api, now, paired_with=nxt)
    run_plan(b, [(x.action, x.kid, x.new_key) for x in plan.actions], "2027-01-16T10:00:00Z")
    check_invariants(replay_keys(b.entries)["api-prod"])


def test_warnings_are_actions(api: KeysetPolicy, policy: Policy) -> None:
    b = LedgerBuilder()
    genesis(b, "2027-01-15T10:00:00Z")
    states = replay_keys(b.entries)
    out = warnings(states, policy, t("2027-04-20T00:00:00Z"))
    assert "api-prod: rotation overdue since 2027-04-15 — run quarterly-rotation" in out
    assert "legacy: no keys yet — run genesis" in out


def test_status_json_shape(policy: Policy) -> None:
    b = LedgerBuilder()
    a, _ = genesis(b, "2027-01-15T10:00:00Z")
    doc = status_json(replay_keys(b.entries), policy, t("2027-01-16T00:00:00Z"))
    json.dumps(doc)  # serialisable
    ks = doc["keysets"][0]
    assert ks["name"] == "api-prod" and ks["alg"] == "ES256"
    assert ks["next_due"] == "2027-04-15T10:00:00Z"
    assert ks["active_kid"] == a
    first, second = ks["keys"]
    assert first["state"] == "active" and first["activated_at"] == "2027-01-15T10:00:00Z"
    assert first["retired_at"] is None and first["archived_at"] is None
    assert second["earliest_activation"] == "2027-01-19T11:00:00Z"
    for key in ("kid", "alg", "state", "label", "created_at", "published_at", "activated_at",
                "retired_at", "archived_at", "destroyed_at"):
        assert key in first
    assert doc["keysets"][1]["name"] == "legacy" and doc["keysets"][1]["keys"] == []


# --- rehearsal clock -----------------------------------------------------------------------


def test_effective_now() -> None:
    wall = t("2027-01-15T10:00:00Z")
    last = t("2027-02-01T00:00:00Z")
    assert effective_now(requested=None, rehearsal=False, last_recorded=None, wall=wall) == wall
    # The machine clock went backwards a little: never act before the last recorded time.
    stepped = t("2027-01-15T10:40:00Z")
    assert effective_now(requested=None, rehearsal=False, last_recorded=stepped,
                         wall=wall) == stepped
    # A rehearsal moved its clock ahead with --now: later commands go on from there.
    assert effective_now(requested=None, rehearsal=True, last_recorded=last, wall=wall) == last
    # A production ledger dated weeks ahead: a wrong clock or an edited ledger, never adopted
    # (it would count grace periods and destruction waits that did not pass).
    with pytest.raises(ClockError) as ahead:
        effective_now(requested=None, rehearsal=False, last_recorded=last, wall=wall)
    assert "2027-02-01T00:00:00Z" in ahead.value.message and "16 d 14 h" in ahead.value.message
    assert "verify audit" in ahead.value.hint
    later = t("2027-06-01T00:00:00Z")
    assert effective_now(requested=later, rehearsal=True, last_recorded=last, wall=wall) == later
    with pytest.raises(RehearsalOnlyError, match="only accepted in rehearsal"):
        effective_now(requested=later, rehearsal=False, last_recorded=last, wall=wall)
    with pytest.raises(ClockError) as info:
        effective_now(requested=wall, rehearsal=True, last_recorded=last, wall=wall)
    assert "2027-01-15T10:00:00Z" in info.value.message and "2027-02-01T00:00:00Z" in \
        info.value.message
    with pytest.raises(ClockError):
        effective_now(requested=None, rehearsal=False, last_recorded=None,
                      wall=wall.replace(tzinfo=None))


def test_policy_from_ledger_must_be_valid() -> None:
    with pytest.raises(ConfigError):
        Policy.from_dict({"v": 1, "keysets": {}})
