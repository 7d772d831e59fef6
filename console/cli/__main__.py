"""`python -m console.cli`, the same as `ceremony`."""

import sys

from console.cli import main

sys.exit(main())
