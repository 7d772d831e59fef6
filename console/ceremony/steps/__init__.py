"""The engine's step handlers, one module per concern: `keys` (reconcile, generate, self-test,
destroy), `exports` (the bundle-signing key, bundles, audit packs) and `officers` (officers, the
PIN, configuration, signers, notes and the closing checkpoint). Each handler takes the running
`CeremonyRun` and its own typed action; `console.ceremony.engine.STEPS` maps action types to them.
"""

__all__: list[str] = []
