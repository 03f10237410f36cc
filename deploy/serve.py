"""Container entry point: `python -m deploy.serve [service]` runs one service under uvicorn.

The service comes from the argument or `CP_SERVICE`; host and port from that service's settings (`<PREFIX>HOST`,
`<PREFIX>PORT`). Settings are loaded once here first so that a bad configuration (a default secret in production, a
malformed value) stops the container at start with a clear message instead of a crash loop inside uvicorn.
"""

import argparse
import os
import sys

import uvicorn
from pydantic import ValidationError

from deploy.services import SERVICE_ENV, resolve

# Below Kubernetes' default grace period (30 s), so open requests finish before the kubelet kills the process.
GRACEFUL_SHUTDOWN_SECONDS = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", nargs="?", default=os.environ.get(SERVICE_ENV))
    args = parser.parse_args(argv)
    service = resolve(args.service)
    try:
        settings = service.settings_type()()
    except ValidationError as error:
        # Field names and messages only: the input values may be secrets.
        for problem in error.errors(include_input=False, include_url=False):
            field = "_".join(str(part) for part in problem["loc"]).upper()
            where = f"{service.env_prefix}{field}: " if field else ""
            print(f"{service.name}: {where}{problem['msg']}", file=sys.stderr)
        return 2
    uvicorn.run(
        f"{service.app_module}:create_app", factory=True, host=settings.host, port=settings.port,
        loop="uvloop", http="httptools", access_log=False, server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
