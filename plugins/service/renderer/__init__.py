"""Renderers of service intent: ``nft`` for the Linux dataplane (a VPP NAT44 one can follow)."""
