"""``python -m apps.cni``: run the ``contiv-cni`` binary."""

import sys

from apps.cni.main import main

sys.exit(main())
