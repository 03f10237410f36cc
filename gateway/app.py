"""The gateway application: `uvicorn gateway.app:create_app --factory`."""

import asyncio
import contextlib
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import make_asgi_app
from redis.asyncio import Redis
from starlette.middleware import Middleware

from gateway import pages
from gateway.keys import KeyRing
from gateway.oauth import AuthorizationServer
from gateway.proxy import DirectForwarding, Proxy
from gateway.ratelimit import Limiter, MemoryRateLimiter, RedisRateLimiter
from gateway.routes import FORWARDED_METHODS, SERVICES, forward, forwarding_route, router
from gateway.service import Identity, seed_demo_users
from gateway.settings import GatewaySettings
from gateway.vocabularies import vocabularies_router
from services.common.app import create_service_app
from services.common.auth import RevocationList, TokenVerifier

MIGRATIONS = Path(__file__).parent / "migrations"
HOUSEKEEPING_SECONDS = 600.0
CORS_HEADERS = ["Authorization", "Content-Type", "Accept", "Accept-Language", "If-Match", "If-None-Match",
                "Idempotency-Key", "X-Request-ID", "traceparent", "tracestate"]


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    async def start(app: FastAPI) -> None:
        keyring = KeyRing(app.state.db, max(settings.access_token_ttl_seconds, settings.service_token_ttl_seconds))
        await keyring.load()
        app.state.keyring = keyring
        identity = Identity(settings, app.state.db, keyring)
        app.state.identity = identity
        app.state.revocations = RevocationList(identity.revoked_session_ids, max_age=1.0)
        app.state.verifier = TokenVerifier(
            issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_url=settings.jwks_url,
            client=app.state.http, trusted=settings.trusted_issuers, own_keys=keyring,
            revocations=app.state.revocations,
        )
        app.state.authorization_server = AuthorizationServer(settings, identity)
        app.state.proxy = Proxy(settings.upstreams, settings.upstream_timeouts, settings.breaker_failures,
                                settings.breaker_open_seconds)
        await app.state.proxy.start()
        app.state.user_limiter, app.state.address_limiter = _limiters(app, settings)
        await identity.sync_service_clients()
        if settings.seed_demo_users:
            await seed_demo_users(app.state.db, settings.demo_password)

    async def stop(app: FastAPI) -> None:
        await app.state.proxy.close()
        if getattr(app.state, "redis", None) is not None:
            await app.state.redis.aclose()

    app = create_service_app(
        name="gateway",
        title="Child protection gateway",
        description="The one public entry: sign-in, tokens, and every service's API under its prefix.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        # Before `router`: its catch-all /{service}/{path} would take /v1/vocabularies and the sign-in page.
        routers=[vocabularies_router(), pages.router, router],
        on_startup=[start],
        own_docs=False,
        background=[lambda app, stop: app.state.keyring.reload_periodically(stop), _housekeeping,
                    _metrics_listener(settings)],
        on_shutdown=[stop],
        metrics_from_loopback=False,
        # The proxy passes queries on to the services, which refuse unknown ones; OAuth endpoints must ignore them
        # (RFC 6749 section 3.1).
        refuse_unknown_query=False,
        middleware=[Middleware(DirectForwarding, services=SERVICES, methods=FORWARDED_METHODS, endpoint=forward,
                               route=forwarding_route())],
    )
    # A path that differs by a trailing slash is not found: no redirect, whose Location would echo the Host header.
    app.router.redirect_slashes = False
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"], allow_headers=CORS_HEADERS,
                           expose_headers=["ETag", "Last-Modified", "Retry-After", "X-Request-ID", "Location"],
                           max_age=600)
    return app


def _limiters(app: FastAPI, settings: GatewaySettings) -> tuple[Limiter, Limiter]:
    if not settings.redis_url:
        return MemoryRateLimiter(settings.rate_limit_per_user), MemoryRateLimiter(settings.rate_limit_per_address)
    app.state.redis = Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return (RedisRateLimiter(app.state.redis, settings.redis_prefix, "user", settings.rate_limit_per_user),
            RedisRateLimiter(app.state.redis, settings.redis_prefix, "address", settings.rate_limit_per_address))


async def _housekeeping(app: FastAPI, stop: asyncio.Event) -> None:
    """Forget revocations, sign-ins and codes whose time has passed, and old throttle counts."""
    while not stop.is_set():
        with contextlib.suppress(Exception):
            await app.state.identity.forget_expired()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=HOUSEKEEPING_SECONDS)


def _metrics_listener(settings: GatewaySettings):  # type: ignore[no-untyped-def]
    """Prometheus metrics on their own port, which only the scraper can reach (the public port has none)."""

    async def serve(app: FastAPI, stop: asyncio.Event) -> None:
        if not settings.metrics_port:
            return
        config = uvicorn.Config(make_asgi_app(), host=settings.metrics_host, port=settings.metrics_port,
                                log_config=None, access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve())
        await stop.wait()
        server.should_exit = True
        await task

    return serve
