"""What an officer sees before unlocking a card: a plan, its digest and words, who approved.

`PlanView` is the one rendering of a plan for both faces (the CLI prints `render()`, the TUI
lays out the same parts), and `check_words` is the one rule for confirming the digest words:
the officer types a prefix of at least two of the plan's words (or all of them with
`--words`), so what they sign is what they read aloud.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from console.ceremony.actions import ExportBundle, RecordConfig
from console.ceremony.journal import PlanRecord
from console.clock import format_time
from console.errors import UsageError
from console.jsontypes import JsonObject
from console.lifecycle import short_kid
from console.quorum.approvals import QuorumStatus
from console.quorum.words import digest_words, grouped_hex

MIN_CONFIRM_WORDS = 2


@dataclass(frozen=True, slots=True)
class PlanView:
    """A plan as the officers review it (a value; build it with `Session.review`)."""

    record: PlanRecord
    status: QuorumStatus

    @property
    def plan_id(self) -> str:
        return self.record.plan_id

    @property
    def digest(self) -> bytes:
        return self.record.digest

    @property
    def words(self) -> list[str]:
        return digest_words(self.record.digest)

    def render(self) -> str:
        """The plan as text: header, digest and words, numbered actions, what waits, inputs."""
        plan = self.record.plan
        lines = [
            f"plan {plan.id} · {plan.script} · {plan.ceremony_class} quorum {plan.quorum_m} of "
            f"{plan.quorum_n} · expires {format_time(plan.expires_at)}",
            f"digest {grouped_hex(self.digest)}",
            f"words  {' '.join(self.words)}",
        ]
        for action in plan.actions:
            lines.append(f"  {action.n:>2} {action.description}")
            if isinstance(action, ExportBundle):
                lines += [f"       {c.verb} {c.key.text}: {c.why}" for c in action.changes]
        for item in plan.deferred:
            lines.append(f"  later: {item.action} {short_kid(item.kid)} from {item.earliest} "
                         f"({item.why})")
        lines += [f"  note: {n}" for n in plan.notes]
        inputs = plan.inputs
        lines.append(
            f"  inputs: policy.toml {inputs.policy_sha256[:12]}… · ceremony.toml "
            f"{inputs.config_sha256[:12]}… · module {inputs.module_path} "
            f"{inputs.module_sha256[:12]}… · "
            + (f"network HSM {inputs.server_address} · " if inputs.server_address else "")
            + f"pin.sealed {inputs.pin_sealed_sha256[:12]}… · "
            f"ledger {plan.ledger_size} entries, root "
            f"{base64.b64encode(plan.ledger_root).decode()[:16]}…")
        lines.append(f"  {self.status.summary()}")
        return "\n".join(lines)

    def summary(self) -> JsonObject:
        """The JSON form (`plan --json`)."""
        plan = self.record.plan
        return {
            "plan_id": plan.id, "digest": self.digest.hex(), "words": self.words,
            "script": plan.script, "class": plan.ceremony_class,
            "quorum": {"m": plan.quorum_m, "n": plan.quorum_n}, "keysets": list(plan.keysets),
            "actions": [a.to_dict() for a in plan.actions],
            "deferred": [d.to_dict() for d in plan.deferred], "notes": list(plan.notes),
            "expires_at": format_time(plan.expires_at), "state": self.record.state(),
            "approved_by": list(self.status.counted),
            "config_changes": [line for a in plan.actions if isinstance(a, RecordConfig)
                               for line in a.changes],
        }


def check_words(digest: bytes, typed: str) -> None:
    """The typed words are the first words of `digest` (at least two, any case/spacing).

    Raises:
        UsageError: they are not: the officer is looking at another plan.
    """
    words = digest_words(digest)
    given = typed.lower().replace(",", " ").split()
    if len(given) < MIN_CONFIRM_WORDS or given != words[:len(given)]:
        raise UsageError(
            "the words typed are not this plan's digest words",
            f"read the words shown for this plan and type at least the first "
            f"{MIN_CONFIRM_WORDS}; a different word means a different plan: do not approve",
        )


__all__ = ["MIN_CONFIRM_WORDS", "PlanView", "check_words"]
