"""``python -m tools.bench``: the table of benchmark commands (each is its own module)."""

import sys

from . import __doc__ as TABLE

print(TABLE.strip())
sys.exit(0)
