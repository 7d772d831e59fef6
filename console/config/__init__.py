"""Workspace configuration: `ceremony.toml` and `policy.toml` parsed into frozen dataclasses.

This package owns the two TOML formats of DESIGN.md sections 4, 6 and 7 and their validation:
`workspace` (ceremony.toml), `policy` (policy.toml and its canonical ledger form), `_durations`
(the "90d" duration strings) and `_toml` (the strict reader and its line locator). Parsing is
strict: an unknown key, a wrong type or an impossible value is a `ConfigError` whose one line
reads `<file>:<line>: <what is wrong> — <what to write instead>`.

Callers import from `console.config`, not from its modules. `__all__` is the interface; the few
other names the single-module `console.config` exposed (the module search paths, RSA_ALGORITHMS,
CURVE_OF_ALG, ...) stay importable through the `X as X` imports, which re-export them for mypy
without widening `__all__`.
"""

from console.config._durations import format_duration_text, parse_duration
from console.config._toml import PathPart as PathPart
from console.config.policy import (
    ALGORITHMS,
    CONSUMER_TYPES,
    Consumer,
    KeysetPolicy,
    Policy,
    Probe,
    c_max,
    load_policy,
    slowest_consumer,
)
from console.config.policy import CURVE_OF_ALG as CURVE_OF_ALG
from console.config.policy import RSA_ALGORITHMS as RSA_ALGORITHMS
from console.config.policy import RSA_ONLY_CONSUMERS as RSA_ONLY_CONSUMERS
from console.config.workspace import P11KIT_CLIENT_PATHS as P11KIT_CLIENT_PATHS
from console.config.workspace import SOFTHSM_MODULE_PATHS as SOFTHSM_MODULE_PATHS
from console.config.workspace import (
    HsmConfig,
    Officer,
    Quorum,
    QuorumRule,
    WorkspaceConfig,
    load_workspace_config,
    render_workspace_config,
)

__all__ = [
    "ALGORITHMS",
    "CONSUMER_TYPES",
    "Consumer",
    "HsmConfig",
    "KeysetPolicy",
    "Officer",
    "Policy",
    "Probe",
    "Quorum",
    "QuorumRule",
    "WorkspaceConfig",
    "c_max",
    "format_duration_text",
    "load_policy",
    "load_workspace_config",
    "parse_duration",
    "render_workspace_config",
    "slowest_consumer",
]
