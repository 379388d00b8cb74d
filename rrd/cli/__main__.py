"""`python -m rrd.cli`: the `rrd` command without its console script (accelerate launch, a source tree)."""

import sys

from . import main

sys.exit(main())
