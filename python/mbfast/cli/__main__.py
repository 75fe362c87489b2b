"""`python -m mbfast.cli ...`: the `mbfast` command."""
import sys

from mbfast.cli import main

sys.exit(main())
