"""`python -m gateway` is the `sluice` command."""

import sys

from gateway.cli import main

sys.exit(main())
