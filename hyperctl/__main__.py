import sys

from hyperctl.cli import main

sys.exit(main())
