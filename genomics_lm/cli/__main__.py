"""``python -m genomics_lm.cli``: the same as ``genomics-lm``."""

import sys

from genomics_lm.cli import main

sys.exit(main())
