"""A small, stateful stand-in for VPP's binary-API socket (tests only; never shipped in apps).

:class:`VPPStub` listens on a unix socket and speaks the protocol vpp_papi's socket transport
speaks (``sockclnt_create`` handshake with the message table, 16-byte frame header, context
matching, control-ping terminated dumps), encoding and decoding with vpp_papi's own codec built
from VPP's ``*.api.json`` files. It keeps the state the VPP descriptors use and rejects what
VPP rejects with VPP's own negative ``retval`` codes.
"""

from tests.vppstub.server import VPPStub, default_api_dir

__all__ = ["VPPStub", "default_api_dir"]
