"""`python -m core ...`: every workflow step, headless."""
import sys

from core.cli import main

sys.exit(main())
