"""Consumer limits at planning: a plan whose bundle would break a consumer's limit is refused at
`ceremony plan`, before anything is recorded or written (DESIGN.md §7).

The case a policy check alone cannot catch: the keyset moves from ES256 to RS256 and gains an
Azure APIM consumer (RSA keys only). The new policy loads (APIM verifies RS256) and is recorded
by a config-change, but the ES256 keys published now would still be in the next bundle, and
APIM's file cannot carry them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.ceremony_helpers import (
    after,
    assert_one_error,
    cli,
    ledger_rows,
    make_demo,
    ok,
)

pytestmark = pytest.mark.hsm

APIM = """
[[keysets.demo-api.consumers]]
name = "azure"
type = "apim"
cache_lifetime = "1h"
"""


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def test_a_plan_whose_bundle_a_consumer_refuses_is_never_offered(tmp_path: Path) -> None:
    ws = make_demo(tmp_path / "demo")
    policy = ws / "policy.toml"
    text = policy.read_text()
    assert 'alg = "ES256"' in text
    policy.write_text(text.replace('alg = "ES256"', 'alg = "RS256"\nrsa_bits = 2048') + APIM)
    ok(ws, "run", "config-change", "--now", after(ws), "--officer", "alice", "--officer", "bob",
       "--officer", "carol")

    rows, exports = ledger_rows(ws), tree(ws / "exports")
    result = cli(ws, "plan", "quarterly-rotation", "--keyset", "demo-api", "--now",
                 after(ws, days=80))
    line = assert_one_error(result, 1, "the bundle of demo-api this plan would export is "
                            "refused: Azure APIM validate-jwt accepts RSA keys only: key ")
    assert "is EC (ES256)" in line, line
    assert ledger_rows(ws) == rows  # no ceremony.planned, nothing else
    assert tree(ws / "exports") == exports
