"""``python -m benchmarks.cable_rl``: run the command line (:mod:`benchmarks.cable_rl.cli`)."""

import sys

from benchmarks.cable_rl.cli import main

if __name__ == "__main__":
    sys.exit(main())
