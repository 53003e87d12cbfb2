"""Run the stand-in as its own process: ``python -m tests.vppstub --socket /tmp/vpp/api.sock``.

Serves until SIGTERM/SIGINT (then removes the socket and the real taps it made). Handy for
benchmarks (VPP is a separate process too) and for running an agent by hand against it.
"""

from __future__ import annotations

import argparse
import signal
import threading

from tests.vppstub.interfaces import Options
from tests.vppstub.server import VPPStub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", required=True, help="unix socket path to serve on")
    parser.add_argument("--no-vhost-net", action="store_true", help="refuse TAPs with -11, as hosts without vhost-net")
    parser.add_argument("--host-taps", action="store_true", help="create real Linux taps for TAPs")
    args = parser.parse_args()
    options = Options(vhost_net=not args.no_vhost_net, create_host_taps=args.host_taps)
    stub = VPPStub(args.socket, options=options).start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"VPP stand-in serving on {args.socket}", flush=True)
    done.wait()
    stub.stop()
    stub.remove_host_taps()


if __name__ == "__main__":
    main()
