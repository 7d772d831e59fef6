"""`python -m console` runs the `ceremony` command."""

import sys

from console.cli import main

sys.exit(main())
