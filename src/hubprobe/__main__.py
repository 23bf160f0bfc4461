"""``python -m hubprobe``."""

import sys

from hubprobe.cli import main

sys.exit(main())
