"""The shape of JSON data at the console's seams.

Ledger entry data, plan members and `--json` output cross module boundaries as JSON objects.
Their values are typed `object`, not `Any`: whoever reads one narrows it first (an `isinstance`,
or a parser that raises), so a malformed entry cannot flow unchecked into a decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

JsonObject: TypeAlias = dict[str, object]
"""A JSON object being built (what `to_dict` and `to_json` return)."""

JsonMapping: TypeAlias = Mapping[str, object]
"""A JSON object being read (what a parser or a ledger reader takes)."""
