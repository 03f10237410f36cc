"""Container health check: `python -m deploy.healthcheck [service]` exits 0 when the service's `/readyz` answers 200.

Standard library only and no settings import, so it costs little when Docker runs it every few seconds.
"""

import argparse
import os
import sys
import urllib.error
import urllib.request

from deploy.services import SERVICE_ENV, resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", nargs="?", default=os.environ.get(SERVICE_ENV))
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    service = resolve(args.service)
    port = int(os.environ.get(f"{service.env_prefix}PORT", service.port))
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        print(f"{service.name} not ready: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
