"""A real VPP for tests (the runner lives in :mod:`apps.lab.dataplane.realvpp`, which the lab uses too)."""

from __future__ import annotations

from apps.lab.dataplane.realvpp import ENV_VAR, STARTUP_CONF, RealVPP, VPPInstall, find_vpp

__all__ = ["ENV_VAR", "STARTUP_CONF", "RealVPP", "VPPInstall", "find_vpp"]
