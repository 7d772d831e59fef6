"""Names people choose: the one rule for officer names.

An officer's name appears in signed-note key names, ledger entries, file names and prompts, so it
is short and plain: 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit (no
spaces, no '+', no control characters). ceremony.toml, cards, the ledger and approvals all use
this rule.
"""

from __future__ import annotations

import re

from console.errors import OfficerError

OFFICER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
OFFICER_NAME_RULE = "use 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_officer_name(name: object) -> str:
    """Return `name` if it is a valid officer name.

    Raises:
        OfficerError: the name is not valid (the message shows at most 40 characters of it).
    """
    if not isinstance(name, str) or not OFFICER_NAME.fullmatch(name):
        shown = repr(name[:40]) + ("…" if len(name) > 40 else "") if isinstance(name, str) \
            else type(name).__name__
        raise OfficerError(f"officer name {shown} is not valid", OFFICER_NAME_RULE)
    return name


__all__ = ["OFFICER_NAME", "OFFICER_NAME_RULE", "check_officer_name"]
