"""Regenerate the protobuf modules from ``cni.proto``: ``python -m plugins.podmanager.regenerate``."""

from __future__ import annotations

import sys

from core.protogen import regenerate

if __name__ == "__main__":
    sys.exit(regenerate("plugins/podmanager/cni.proto"))
