"""The shapes of the service reports the TUI reads, as TypedDicts.

`console.ceremony.status.workspace_status` (the `status --json` document of DESIGN.md §10) and
`console.ceremony.officers.officer_rows` return plain JSON-like dicts; the backend casts them to
these types once, so that every screen reads named, typed members. Only the members the screens
read are listed (a TypedDict may describe a dict that holds more).
"""

from __future__ import annotations

from typing import TypedDict


class KeyReport(TypedDict, total=False):
    """One key of a keyset (`lifecycle.key_json`); times are RFC 3339 UTC text or None."""

    kid: str
    alg: str
    state: str
    label: str
    purpose: str
    published_at: str | None
    activated_at: str | None
    retired_at: str | None
    archived_at: str | None
    destroyed_at: str | None
    compromised_at: str | None
    earliest_activation: str | None
    earliest_unpublish: str | None
    earliest_destruction: str | None


class KeysetReport(TypedDict, total=False):
    """One keyset of the status document."""

    name: str
    alg: str | None
    keys: list[KeyReport]
    next_due: str | None
    overdue: bool
    latest_ceremony: str | None


class OpenPlanReport(TypedDict, total=False):
    """One open plan of the status document (`open_plans`)."""

    plan_id: str
    script: str
    state: str
    keysets: list[str]
    approvals: int
    quorum: int
    steps_done: int
    steps: int
    expires_at: str


class SigningKeyReport(TypedDict, total=False):
    """The active bundle-signing key (`bundle_signing_key`), or the exported JWK."""

    kid: str
    alg: str
    label: str


class StatusReport(TypedDict, total=False):
    """What `workspace_status` returns, as far as the dashboard reads it."""

    now: str
    keysets: list[KeysetReport]
    warnings: list[str]
    open_plans: list[OpenPlanReport]
    bundle_signing_key: SigningKeyReport | None


class OfficerRow(TypedDict, total=False):
    """One row of `officer_rows`."""

    name: str
    status: str
    enrolled_at: str | None
    revoked_at: str | None
    fingerprint: str
    last_approval: str | None
