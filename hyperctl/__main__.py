import sys

from hyperctl.cli import entry

sys.exit(entry())
