"""`python -m kubevip` runs the command line."""

import sys

from kubevip.cli import main

sys.exit(main())
