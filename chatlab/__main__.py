"""``python -m chatlab``: the command line (see :mod:`chatlab.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
