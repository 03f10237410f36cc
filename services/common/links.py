"""Links a client can follow. The gateway publishes each service under a path prefix (`/cases`, `/registry`,
`/reporting`), so every path the API hands out (a `Location` or `Content-Location` header, a problem's
`instance`, a link in a body such as an import's `errors_url`) is the service's own path with that prefix in front:
`public_path("/v1/cases/{id}")` is `/cases/v1/cases/{id}` when the service runs behind the gateway.

The prefix is the service's `public_path_prefix` setting (`<PREFIX>PUBLIC_PATH_PREFIX`, empty for the gateway and
for a service called directly); `RequestContextMiddleware` makes it current for each request.
"""

from contextvars import ContextVar

public_path_prefix_var: ContextVar[str] = ContextVar("public_path_prefix", default="")


def public_path(path: str) -> str:
    """The path through the gateway of this service's `path` (which starts with "/")."""
    return public_path_prefix_var.get() + path
