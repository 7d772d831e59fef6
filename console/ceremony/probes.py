"""Evidence before activation: a canary token to each consumer's probe, the next kid in its JWKS.

DESIGN.md §7: a key is activated no earlier than `published_at + C_max + M`, *and* only after
every consumer that declares a `probe` accepted a short-lived canary token signed by that key,
and every consumer that declares a `jwks_uri` serves its kid. The time rule says when consumers
*should* have the key; the evidence says they *do*. Consumers that declare neither keep the time
rule alone and are shown as "unconfirmed" in the plan.

* The plan (`planned_checks`, `describe_checks`) names, for each activation that is not waived
  (genesis and emergencies activate keys no consumer can know yet), which consumers will be
  asked and which stay unconfirmed. The consumer names go in `ExportBundle.probes`.
* The engine signs the canary on the HSM with the next key (`canary_claims`: `aud`
  `key-ceremony-canary`, `exp` = `iat` + 5 min, `iss` the keyset's issuer, the next kid in the
  header), then `gather` asks each consumer, with the officers present and before anything is
  exported. One refusal refuses the activation; the evidence is recorded either way
  (`consumer.probed`, see `Evidence.ledger_data`).

How a consumer is asked (the network boundary, `_https_get`):
* probe: `GET url` with `Authorization: Bearer <canary>`; accepted when the answer's status is
  the probe's `status` (default 200). Redirects are not followed (a 3xx is the answer: a probe
  that redirects is not checking the token), and every request has a timeout.
* jwks_uri: `GET`, a JWK Set whose key with the next kid has the next key's public members.
* TLS trusts the probe's `ca_file` (relative to the workspace) only after its SHA-256 matches
  `ca_sha256` from policy.toml, which the quorum sealed; else the system trust store. The same
  trust serves the consumer's `jwks_uri`: both are that consumer's hosts.

The canary's times come from the *wall clock*, not the ceremony's: consumers check `exp`
against their own clocks, and a rehearsal may have moved the ledger's clock by months.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import secrets
import ssl
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from console import jose
from console.clock import format_time, parse_time, require_utc
from console.config import Consumer, KeysetPolicy
from console.errors import TransitionRefusedError
from console.jsontypes import JsonMapping, JsonObject
from console.lifecycle import short_kid

__all__ = [
    "CANARY_AUDIENCE",
    "CANARY_LIFETIME",
    "PROBE_TIMEOUT",
    "Evidence",
    "canary_claims",
    "describe_checks",
    "gather",
    "planned_checks",
    "refusal",
]

CANARY_AUDIENCE: Final = "key-ceremony-canary"
"""The canary's `aud`: a gateway's API locations refuse it; its probe location accepts it."""
CANARY_LIFETIME: Final = timedelta(minutes=5)
PROBE_TIMEOUT: Final = 10.0
"""Seconds for each connection and each read: a consumer that does not answer refuses."""
MAX_BODY: Final = 1 << 20
USER_AGENT: Final = "key-ceremony-console/canary-probe"
Check = Literal["probe", "jwks_uri"]


# --- the plan ------------------------------------------------------------------------------


def planned_checks(policy: KeysetPolicy) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(consumers that will be asked: a probe and/or a jwks_uri; consumers left unconfirmed)."""
    asked = tuple(c.name for c in policy.consumers if c.probe is not None or c.jwks_uri)
    return asked, tuple(c.name for c in policy.consumers if c.name not in asked)


def describe_checks(policy: KeysetPolicy, keys: Sequence[str]) -> list[str]:
    """The plan's lines for activations of `keys` (their kid or label as the plan shows it)."""
    asked, unconfirmed = planned_checks(policy)
    which = ", ".join(keys)
    lines: list[str] = []
    for consumer in policy.consumers:
        if consumer.probe is not None:
            lines.append(f"before activating {which}: a canary token signed by it must be "
                         f"accepted by {consumer.name} ({consumer.probe.url} answers HTTP "
                         f"{consumer.probe.status})")
        if consumer.jwks_uri:
            lines.append(f"before activating {which}: {consumer.name}'s JWKS "
                         f"({consumer.jwks_uri}) must serve its kid")
    if unconfirmed:
        lines.append(f"unconfirmed (time rule only, no probe or jwks_uri): "
                     f"{', '.join(unconfirmed)}")
    if not asked:
        lines.append("no consumer can confirm the activation: declare a probe or jwks_uri "
                     "in policy.toml to have it checked")
    return lines


# --- evidence ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    """One consumer's answer about the next key, as the ledger records it."""

    consumer: str
    check: Check
    url: str
    kid: str
    accepted: bool
    answer: str
    at: datetime

    def ledger_data(self, keyset: str) -> JsonObject:
        """The `consumer.probed` entry's data."""
        return {"keyset": keyset, "consumer": self.consumer, "check": self.check,
                "url": self.url, "kid": self.kid, "accepted": self.accepted,
                "answer": self.answer, "at": format_time(self.at)}

    @classmethod
    def from_ledger(cls, data: JsonMapping) -> Evidence:
        """Read back what `ledger_data` wrote (from a step's intent, when resuming)."""
        check = str(data["check"])
        if check not in ("probe", "jwks_uri"):
            raise ValueError(f"unknown check {check!r}")
        return cls(consumer=str(data["consumer"]), check="probe" if check == "probe"
                   else "jwks_uri", url=str(data["url"]), kid=str(data["kid"]),
                   accepted=data["accepted"] is True, answer=str(data["answer"]),
                   at=parse_time(str(data["at"]), "evidence time"))

    def line(self) -> str:
        """One line for the officers (progress) and the refusal."""
        what = ("the canary" if self.check == "probe" else "its JWKS")
        verdict = "accepted" if self.accepted else "REFUSED"
        return (f"{self.consumer}: {what} at {self.url} — {self.answer} ({verdict}, kid "
                f"{short_kid(self.kid)}, {format_time(self.at)})")


def refusal(evidence: Sequence[Evidence], *, keyset: str) -> TransitionRefusedError | None:
    """The error refusing the activation when a consumer did not accept, else None."""
    refused = [e for e in evidence if not e.accepted]
    if not refused:
        return None
    kid = short_kid(refused[0].kid)
    reasons = "; ".join(
        f"{e.consumer} answered the canary with {e.answer}" if e.check == "probe"
        else f"{e.consumer}'s JWKS at {e.url}: {e.answer}" for e in refused)
    return TransitionRefusedError(
        f"activation of {kid} in {keyset} refused: {reasons}",
        f"have each consumer named install the bundle that published {kid}, then `ceremony "
        "resume` (nothing was exported; no key changed state)",
        rule="consumer-evidence")


def canary_claims(issuer: str, now: datetime) -> JsonObject:
    """The canary's claims at wall-clock time `now` (see the module docstring)."""
    iat = int(require_utc(now, "now").timestamp())
    return {"iss": issuer, "sub": CANARY_AUDIENCE, "aud": CANARY_AUDIENCE, "iat": iat,
            "exp": iat + int(CANARY_LIFETIME.total_seconds()), "jti": secrets.token_hex(16)}


def gather(consumers: Sequence[Consumer], *, canary: str, kid: str, jwk: JsonMapping,
           root: Path, clock: Callable[[], datetime]) -> list[Evidence]:
    """Ask every consumer (each probe, then each jwks_uri); never raises for a consumer's
    fault: a consumer that cannot be reached, or a CA file that does not match its pin, gives
    evidence that it did not accept."""
    out: list[Evidence] = []
    for consumer in consumers:
        try:
            context: ssl.SSLContext | None = _tls_context(consumer, root)
            problem = ""
        except _ProbeSetupError as e:
            context, problem = None, str(e)
        if consumer.probe is not None:
            url = consumer.probe.url
            if context is None:
                out.append(Evidence(consumer.name, "probe", url, kid, False, problem, clock()))
            else:
                out.append(_probe(consumer, context, canary, kid, clock))
        if consumer.jwks_uri:
            if context is None:
                out.append(Evidence(consumer.name, "jwks_uri", consumer.jwks_uri, kid, False,
                                    problem, clock()))
            else:
                out.append(_jwks(consumer, consumer.jwks_uri, context, kid, jwk, clock))
    return out


# --- asking --------------------------------------------------------------------------------


class _ProbeSetupError(Exception):
    """The consumer cannot be asked as policy.toml says (its CA file)."""


def _tls_context(consumer: Consumer, root: Path) -> ssl.SSLContext:
    probe = consumer.probe
    if probe is None or probe.ca_file is None:
        return ssl.create_default_context()
    path = Path(probe.ca_file)
    path = path if path.is_absolute() else root / path
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _ProbeSetupError(f"its CA file {probe.ca_file} cannot be read "
                               f"({e.strerror or e})") from e
    if hashlib.sha256(data).hexdigest() != probe.ca_sha256:
        raise _ProbeSetupError(f"its CA file {probe.ca_file} does not match the ca_sha256 "
                               "policy.toml pins")
    try:
        return ssl.create_default_context(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as e:
        raise _ProbeSetupError(f"its CA file {probe.ca_file} holds no usable PEM "
                               "certificate") from e


def _https_get(url: str, context: ssl.SSLContext, headers: Mapping[str, str],
               limit: int) -> tuple[int, Mapping[str, str], bytes]:
    """One GET, no redirects, `PROBE_TIMEOUT` for the connection and each read.

    Raises:
        OSError (ssl errors and timeouts included), http.client.HTTPException, ValueError.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("not an https URL")
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, context=context,
                                       timeout=PROBE_TIMEOUT)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "*/*",
                                             **headers})
        response = conn.getresponse()
        body = response.read(limit + 1)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def _no_answer(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"no answer: TLS certificate not trusted ({error.verify_message})"
    if isinstance(error, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT:g} s"
    if isinstance(error, OSError) and error.strerror:
        return f"no answer: {error.strerror}"
    return f"no answer: {_printable(str(error) or type(error).__name__)}"


def _probe(consumer: Consumer, context: ssl.SSLContext, canary: str, kid: str,
           clock: Callable[[], datetime]) -> Evidence:
    assert consumer.probe is not None
    probe = consumer.probe
    try:
        status, headers, _ = _https_get(probe.url, context,
                                        {"Authorization": f"Bearer {canary}"}, 4096)
    except (OSError, http.client.HTTPException, ValueError) as e:
        return Evidence(consumer.name, "probe", probe.url, kid, False, _no_answer(e), clock())
    answer = f"HTTP {status}"
    if status != probe.status:
        answer += f" (expects {probe.status})"
        challenge = headers.get("www-authenticate")
        if challenge:
            answer += f": {_printable(challenge)[:160]}"
        elif 300 <= status < 400:
            answer += ": a redirect, not followed"
    return Evidence(consumer.name, "probe", probe.url, kid, status == probe.status, answer,
                    clock())


def _jwks(consumer: Consumer, url: str, context: ssl.SSLContext, kid: str,
          jwk: JsonMapping, clock: Callable[[], datetime]) -> Evidence:
    def evidence(accepted: bool, answer: str) -> Evidence:
        return Evidence(consumer.name, "jwks_uri", url, kid, accepted, answer, clock())

    try:
        status, _, body = _https_get(url, context, {"Accept": "application/json"}, MAX_BODY)
    except (OSError, http.client.HTTPException, ValueError) as e:
        return evidence(False, _no_answer(e))
    if status != 200:
        return evidence(False, f"HTTP {status}")
    if len(body) > MAX_BODY:
        return evidence(False, f"the answer is larger than {MAX_BODY} bytes")
    try:
        served = json.loads(body)
    except ValueError:
        return evidence(False, "HTTP 200, but not JSON")
    keys = served.get("keys") if isinstance(served, dict) else None
    if not isinstance(keys, list):
        return evidence(False, "HTTP 200, but not a JWK Set")
    match = [k for k in keys if isinstance(k, dict) and k.get("kid") == kid]
    if not match:
        return evidence(False, f"does not serve kid {short_kid(kid)} ({len(keys)} keys served)")
    kty = jose.algorithm(str(jwk["alg"])).kty
    members = ("kty", *jose.JWK_KEY_MEMBERS[kty])
    if any(match[0].get(m) != jwk.get(m) for m in members):
        return evidence(False, f"serves kid {short_kid(kid)} with other key material")
    return evidence(True, f"serves kid {short_kid(kid)}")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)
