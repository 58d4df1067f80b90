"""`python -m qfsum.cli ...`."""

import sys

from .main import main

sys.exit(main())
