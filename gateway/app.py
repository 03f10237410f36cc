"""The gateway application: `uvicorn gateway.app:create_app --factory`."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway.proxy import Proxy
from gateway.ratelimit import RateLimiter
from gateway.routes import router
from gateway.service import Identity, KeyRing, seed_demo_users
from gateway.settings import GatewaySettings
from gateway.vocabularies import vocabularies_router
from services.common.app import create_service_app
from services.common.auth import TokenVerifier

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    async def start(app: FastAPI) -> None:
        keyring = KeyRing(app.state.db)
        await keyring.load()
        app.state.keyring = keyring
        app.state.verifier = TokenVerifier(
            issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_url=settings.jwks_url,
            client=app.state.http, trusted=settings.trusted_issuers, own_keys=keyring,
        )
        app.state.identity = Identity(settings, app.state.db, keyring)
        app.state.proxy = Proxy(settings.upstreams, settings.upstream_timeout_seconds)
        await app.state.proxy.start()
        app.state.user_limiter = RateLimiter(settings.rate_limit_per_user)
        app.state.address_limiter = RateLimiter(settings.rate_limit_per_address)
        await app.state.identity.sync_service_clients()
        if settings.seed_demo_users:
            await seed_demo_users(app.state.db, settings.demo_password)

    app = create_service_app(
        name="gateway",
        title="Child protection gateway",
        description="The one public entry: sign-in, tokens, and every service's API under its prefix.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        # Before `router`: its catch-all /{service}/{path} would take /v1/vocabularies.
        routers=[vocabularies_router(), router],
        on_startup=[start],
        own_docs=False,
        background=[lambda app, stop: app.state.keyring.reload_periodically(stop)],
        on_shutdown=[lambda app: app.state.proxy.close()],
        # The proxy passes queries on to the services, which refuse unknown ones; OAuth endpoints must ignore them
        # (RFC 6749 section 3.1).
        refuse_unknown_query=False,
    )
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match",
                                          "Idempotency-Key", "X-Request-ID"],
                           expose_headers=["ETag", "Last-Modified", "Retry-After", "X-Request-ID", "Location"])
    return app
