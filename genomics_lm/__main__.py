import sys

from genomics_lm.cli import main

sys.exit(main())
