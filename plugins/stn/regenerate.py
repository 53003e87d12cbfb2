"""Regenerate the protobuf modules from ``stn.proto``: ``python -m plugins.stn.regenerate``."""

from __future__ import annotations

import sys

from core.protogen import regenerate

if __name__ == "__main__":
    sys.exit(regenerate("plugins/stn/stn.proto"))
