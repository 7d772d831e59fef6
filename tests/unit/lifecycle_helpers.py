"""Shared helpers for lifecycle tests: ledger-like entries and real public JWKs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk as jwcrypto_jwk


@dataclass(frozen=True)
class Entry:
    seq: int
    type: str
    time: datetime
    data: Mapping[str, Any]


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def new_public_jwk() -> tuple[str, dict[str, str]]:
    """A fresh P-256 public JWK and its kid, computed by jwcrypto (not our code)."""
    private = ec.generate_private_key(ec.SECP256R1())
    key = jwcrypto_jwk.JWK.from_pyca(private.public_key())
    public = json.loads(key.export_public())
    kid = key.thumbprint()
    return kid, {"kty": "EC", "crv": public["crv"], "x": public["x"], "y": public["y"],
                 "kid": kid, "use": "sig", "alg": "ES256"}


@dataclass
class LedgerBuilder:
    """Appends key entries the way the ceremony engine does."""

    keyset: str = "api-prod"
    entries: list[Entry] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)

    def add(self, type_: str, when: str | datetime, data: Mapping[str, Any]) -> Entry:
        time = t(when) if isinstance(when, str) else when
        entry = Entry(len(self.entries), type_, time, data)
        self.entries.append(entry)
        return entry

    def generate(self, when: str | datetime, label: str = "k") -> str:
        kid, public = new_public_jwk()
        self.add("key.generated", when, {"keyset": self.keyset, "kid": kid, "alg": "ES256",
                                         "label": label, "cka_id": kid[:8].encode().hex(),
                                         "purpose": "token", "jwk": public})
        self.states[kid] = "generated"
        return kid

    def move(self, kid: str, to: str, when: str | datetime, reason: str = "") -> None:
        self.add("key.state_changed", when, {"keyset": self.keyset, "kid": kid,
                                             "from": self.states[kid], "to": to,
                                             "reason": reason})
        self.states[kid] = to
