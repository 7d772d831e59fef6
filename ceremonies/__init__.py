"""The shipped ceremony scripts (`*.toml`), installed as the package `console.shipped_ceremonies`.

pyproject.toml maps this folder to that package, so `console.ceremony.script` finds the scripts
through `importlib.resources` in a checkout, an editable install and a wheel alike.
"""
