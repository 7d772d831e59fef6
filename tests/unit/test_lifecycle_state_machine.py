"""Hypothesis state machine: random programs of transitions at random times.

Every rule asks `check_transition` first and applies only what it allows, so the invariants
below hold for anything the rules permit: never two active keys, nothing returns to active
from retired/compromised/destroyed, every refusal names a rule (and an earliest time when
waiting would help), and allowed transitions respect the computed earliest times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from console.config import Consumer, KeysetPolicy
from console.errors import TransitionRefusedError
from console.lifecycle import (
    NEVER_ACTIVE_AGAIN,
    TRANSITIONS,
    Key,
    KeysetState,
    KeyState,
    check_transition,
    earliest_activation,
    earliest_destruction,
    earliest_unpublish,
)

S = KeyState
POLICY = KeysetPolicy(
    name="api", issuer="https://id.example.com", alg="ES256",
    max_token_lifetime=timedelta(days=30), clock_skew=timedelta(minutes=1),
    margin=timedelta(days=1), destruction_wait=timedelta(days=30),
    consumers=(Consumer("mesh", "istio", timedelta(minutes=20)),
               Consumer("kong", "kong", timedelta(hours=1), timedelta(days=3))),
)
START = datetime(2027, 1, 15, 10, tzinfo=UTC)
DELTAS = st.sampled_from([
    -timedelta(hours=1), timedelta(0), timedelta(minutes=20), timedelta(hours=1),
    timedelta(days=1), timedelta(days=4, hours=1), timedelta(days=31, minutes=1),
    timedelta(days=30), timedelta(days=90),
]) | st.integers(min_value=-3600, max_value=120 * 86400).map(lambda s: timedelta(seconds=s))
TARGETS = st.sampled_from(list(KeyState))
RULES_WITH_TIMES = {"activation-delay", "retirement-grace", "destruction-wait", "clock"}


class LifecycleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = KeysetState("api")
        self.now = START
        self.count = 0
        self.refusals = 0

    def _new_key(self, at: datetime) -> None:
        kid = f"kid-{self.count:03d}-abcdef"
        self.count += 1
        key = Key(keyset="api", kid=kid, alg="ES256", label=kid, cka_id=f"{self.count:02x}",
                  purpose="token", jwk=MappingProxyType({}), state=S.GENERATED,
                  created_at=at, history=((S.GENERATED, at),))
        self.state = self.state.with_key(key)

    @initialize()
    def first_key(self) -> None:
        self._new_key(self.now)

    @rule(delta=DELTAS)
    def generate(self, delta: timedelta) -> None:
        self.now = max(self.now, self.now + delta)
        if len(self.state.keys) < 8:
            self._new_key(self.now)

    @rule(data=st.data(), delta=DELTAS, pair=st.sampled_from(["none", "smart", "any"]),
          emergency=st.booleans())
    def transition(self, data: st.DataObject, delta: timedelta, pair: str,
                   emergency: bool) -> None:
        before = self.state
        kids = [k.kid for k in before.keys]
        kid = data.draw(st.sampled_from(kids))
        key = before.key(kid)
        legal = sorted(TRANSITIONS[key.state])
        # Mostly legal targets, so that programs get deep; sometimes anything at all.
        preferred = [x for x in legal if x is not S.COMPROMISED
                     and not (key.state is S.GENERATED and x is S.DESTROYED)]
        roll = data.draw(st.integers(0, 9))
        to: KeyState
        if preferred and roll < 7:
            to = data.draw(st.sampled_from(preferred))
        elif legal and roll < 9:
            to = data.draw(st.sampled_from(legal))
        else:
            to = data.draw(TARGETS)
        paired: str | None = None
        if pair == "any":
            paired = data.draw(st.sampled_from(kids))
        elif pair == "smart":
            active = before.active_key
            if to is S.ACTIVE and active is not None:
                paired = active.kid
            elif key.state is S.ACTIVE and before.successors:
                paired = data.draw(st.sampled_from([k.kid for k in before.successors]))
        at = self.now + delta
        try:
            check_transition(before, kid, to, POLICY, at, paired_with=paired,
                             emergency=emergency)
        except TransitionRefusedError as e:
            self.refusals += 1
            event(f"refused: {e.rule}")
            assert e.rule, e
            assert "\n" not in e.user_message()
            if e.rule in RULES_WITH_TIMES:
                assert e.earliest is not None, e
            if e.earliest is not None:
                assert e.earliest > at, e
                assert "refused until" in e.message
            else:
                assert "refused (" in e.message
            return
        # Allowed: the computed earliest times were respected.
        if to is S.ACTIVE and key.state is S.PUBLISHED and before.set_up and not emergency:
            assert at >= earliest_activation(key, POLICY)
        if to is S.ARCHIVED and key.state is S.RETIRED:
            assert at >= earliest_unpublish(key, POLICY)
        if to is S.DESTROYED and key.state in (S.ARCHIVED, S.COMPROMISED):
            assert at >= earliest_destruction(key, POLICY)
        assert to not in (S.ACTIVE,) or key.state in (S.PUBLISHED, S.SUSPENDED)
        state = before
        if to is S.ACTIVE and paired is not None:
            state = state.moved(paired, S.RETIRED, at)
        if key.state is S.ACTIVE and paired is not None:
            state = state.moved(kid, to, at)
            state = state.moved(paired, S.ACTIVE, at)
        else:
            state = state.moved(kid, to, at)
        if key.state is S.ACTIVE and to in (S.RETIRED, S.SUSPENDED):
            assert paired is not None, "the only active key left without a successor"
        event(f"applied: {key.state.value} -> {to.value}")
        self.state = state
        self.now = max(self.now, at)

    @rule(delta=DELTAS)
    def quarterly_rotation(self, delta: timedelta) -> None:
        """The common path, so that programs reach retired and archived keys often."""
        active, successors = self.state.active_key, self.state.successors
        if active is None or not successors:
            return
        at = self.now + delta
        try:
            check_transition(self.state, active.kid, S.RETIRED, POLICY, at,
                             paired_with=successors[0].kid)
        except TransitionRefusedError as e:
            event(f"refused rotation: {e.rule}")
            assert e.rule in ("activation-delay", "clock") and e.earliest is not None
            return
        assert at >= earliest_activation(successors[0], POLICY)
        event("applied: rotation")
        self.state = self.state.moved(active.kid, S.RETIRED, at).moved(
            successors[0].kid, S.ACTIVE, at)
        self.now = max(self.now, at)

    @invariant()
    def never_two_active(self) -> None:
        assert len(self.state.in_state(S.ACTIVE)) <= 1

    @invariant()
    def nothing_returns_to_active(self) -> None:
        for key in self.state.keys:
            ended = False
            for state, _ in key.history:
                ended = ended or state in NEVER_ACTIVE_AGAIN
                assert not (ended and state is S.ACTIVE), key.history

    @invariant()
    def history_times_never_go_back(self) -> None:
        for key in self.state.keys:
            times = [when for _, when in key.history]
            assert times == sorted(times)

    @invariant()
    def compromised_and_archived_keys_are_unpublished(self) -> None:
        for key in self.state.keys:
            if key.state in (S.ARCHIVED, S.COMPROMISED, S.DESTROYED) and key.published_at:
                assert key.archived_at is not None


LifecycleMachine.TestCase.settings = settings(
    max_examples=1000, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycleMachine = LifecycleMachine.TestCase
