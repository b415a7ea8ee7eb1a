"""`python -m examples.family_finance ...` (run from the repository root)."""

import sys

from .app import main

sys.exit(main())
