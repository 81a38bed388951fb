"""``python -m bench``: the same as ``argus bench``."""

from bench.run import main

raise SystemExit(main())
