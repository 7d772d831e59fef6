"""Ceremonies: scripts, the typed plan, planning, the session service both faces call, the
engine that runs a plan step by step, the journal, reconciliation, transcripts and signers.

The faces (CLI, TUI) use `console.ceremony.session.Session` for every flow, plus the read-only
reports in `status`, `reconcile`, `officers` and `exporting`; everything else here serves them.
"""

__all__: list[str] = []
