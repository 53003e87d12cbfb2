"""``python -m apps.lab.http_get URL``: print a body; exit 0 on 2xx, 1 on other HTTP codes, 2 when
nothing answers. Run inside a node namespace to reach that node's agent on its loopback."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def main() -> None:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=3) as rsp:
            sys.stdout.write(rsp.read().decode())
    except urllib.error.HTTPError as err:
        sys.stdout.write(err.read().decode())
        sys.exit(1)
    except OSError as err:
        sys.stderr.write(f"{err}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
