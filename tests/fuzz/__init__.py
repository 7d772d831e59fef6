"""Fuzzing support shared by the Hypothesis fuzz tests and the by-hand atheris harnesses."""
