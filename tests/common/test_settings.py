"""Settings read each service's own env prefix and refuse the shipped development secrets outside development."""

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from services.common.settings import DEVELOPMENT_SECRET, ServiceSettings

REAL_SECRET = "Zq7K2p9Wx4rLm8vT3nHd"


class SampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SAMPLE_")

    signing_secret: str = DEVELOPMENT_SECRET

    def secret_values(self) -> dict[str, str]:
        return {**super().secret_values(), "signing_secret": self.signing_secret}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_SERVICE_CLIENT_ID", "sample")
    monkeypatch.setenv("OTHER_PORT", "9999")  # another service's prefix: never read here


def test_development_runs_on_the_shipped_defaults() -> None:
    settings = SampleSettings()
    assert settings.environment == "development"
    assert settings.service_client_secret == settings.signing_secret == DEVELOPMENT_SECRET
    assert settings.port == 8000


@pytest.mark.parametrize("environment", ["production", "test"])
def test_outside_development_the_default_secret_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                           environment: str) -> None:
    monkeypatch.setenv("SAMPLE_ENVIRONMENT", environment)
    monkeypatch.setenv("SAMPLE_SIGNING_SECRET", REAL_SECRET)
    with pytest.raises(ValidationError, match="service_client_secret must be set"):
        SampleSettings()


def test_production_refuses_each_default_and_empty_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_ENVIRONMENT", "production")
    monkeypatch.setenv("SAMPLE_SERVICE_CLIENT_SECRET", REAL_SECRET)
    with pytest.raises(ValidationError, match="signing_secret must be set"):
        SampleSettings()
    monkeypatch.setenv("SAMPLE_SIGNING_SECRET", "")
    with pytest.raises(ValidationError, match="signing_secret must be set"):
        SampleSettings()


def test_the_refusal_does_not_print_the_secrets_that_were_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_ENVIRONMENT", "production")
    monkeypatch.setenv("SAMPLE_DATABASE_URL", f"postgresql+asyncpg://app:{REAL_SECRET}@db/app")
    monkeypatch.setenv("SAMPLE_SIGNING_SECRET", REAL_SECRET)
    with pytest.raises(ValidationError) as refused:
        SampleSettings()
    shown = str(refused.value) + repr(refused.value)
    # pydantic shortens long inputs in the middle: any piece of the secret is a leak.
    assert not [REAL_SECRET[i:i + 6] for i in range(len(REAL_SECRET) - 5) if REAL_SECRET[i:i + 6] in shown]


def test_production_with_real_secrets_starts_and_reads_only_its_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_ENVIRONMENT", "production")
    monkeypatch.setenv("SAMPLE_SERVICE_CLIENT_SECRET", REAL_SECRET)
    monkeypatch.setenv("SAMPLE_SIGNING_SECRET", REAL_SECRET[::-1])
    monkeypatch.setenv("SAMPLE_PORT", "8123")
    settings = SampleSettings()
    assert (settings.environment, settings.port) == ("production", 8123)
    assert settings.signing_secret == REAL_SECRET[::-1]
