"""Cases settings (env prefix CASES_).

Deadlines the law does not fix are here, with defaults; deadlines the law fixes are in `workflow.DEADLINES`.
"""

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from services.common.storage import ObjectStoreSettings

# The papers' numbering (Decree 30/2020/NĐ-CP Art. 15: the issuing body decides how its papers are numbered): the
# series of each paper (one gapless sequence per issuing body, year and series) and its number and symbol.
DOCUMENT_SERIES = {"01": "BC", "02": "BC", "03": "BC", "03-minutes": "BB", "04": "KH", "05": "QĐ", "06": "BC",
                   "07": "QĐ"}
DOCUMENT_SYMBOLS = {"01": "{number:02d}/BC-{issuer_short}", "02": "{number:02d}/BC-UBND",
                    "03": "{number:02d}/BC-UBND", "03-minutes": "{number:02d}/BB-UBND", "04": "{number:02d}/KH-UBND",
                    "05": "{number:02d}/QĐ-UBND", "06": "{number:02d}/BC-UBND", "07": "{number:02d}/QĐ-UBND"}


class CasesSettings(ServiceSettings, ObjectStoreSettings):
    model_config = SettingsConfigDict(env_prefix="CASES_", extra="ignore")

    port: int = 8002
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/cases"
    registry_url: str = "http://127.0.0.1:8001"
    registry_timeout_seconds: float = 5.0
    # Files (attachments, generated papers): CASES_OBJECT_STORE_*, CASES_MASTER_KEYS_JSON (services/common/storage.py).
    object_store_bucket: str = "cases"
    attachment_max_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest file (the gateway allows it).")
    attachment_part_bytes: int = Field(5 * 1024 * 1024, ge=5 * 1024 * 1024, multiple_of=64 * 1024,
                                       description="Part size of resumable uploads (S3 parts: at least 5 MiB).")
    attachment_upload_hours: int = Field(24, ge=1, description="How long a resumable upload may take.")
    attachment_link_seconds: int = Field(300, ge=1, le=300, description="Validity of a download link.")
    attachment_retention_days: int = Field(90, ge=0, description="Days a deleted file's bytes are kept.")
    attachment_orphan_grace_seconds: int = Field(3600, ge=10, description="Age before an object without a row "
                                                 "is deleted; an upload must commit within half of it.")
    attachment_sweep_seconds: float = Field(300.0, gt=0, description="Between rounds of the file sweeper.")
    attachment_rewrap_batch: int = Field(100, ge=1, description="Files rewrapped per round after a key rotation.")
    attachment_image_max_pixels: int = Field(50_000_000, ge=1, description="Largest HEIC photo decoded.")
    attachment_idle_seconds: float = Field(60.0, gt=0, description="An upload that sends nothing this long: 408.")

    # Internal targets, not law (see docs/workflow.md): they never move a legal deadline.
    assessment_hours: int = Field(12, ge=1, description="Initial assessment (Form 02) after the intake.")
    specific_assessment_working_days: int = Field(3, ge=1, description="Specific assessment and needs meeting, "
                                                  "inside the plan's 5 working days (Decree 56 Art. 28(1)).")
    plan_revision_working_days: int = Field(3, ge=1, description="Resubmitting a returned plan.")
    review_interval_days: int = Field(30, ge=1, description="Days between reviews of a plan being carried out.")
    closure_decision_working_days: int = Field(2, ge=1, description="Chairman's decision on ending a plan.")

    # The periodic deadline check, and how far ahead `me/work` warns of deadlines.
    deadline_check_seconds: float = Field(60.0, gt=0)
    deadline_check_batch: int = Field(500, ge=1)
    work_horizon_hours: int = Field(48, ge=1)
    work_list_limit: int = Field(50, ge=1, le=500, description="Items per list of `me/work`, most urgent first.")

    # The papers (docs/forms/README.md): a province's own templates, tried before the shipped ones; the numbering.
    forms_template_dir: str | None = Field(None, description="Directory of templates that replace the shipped ones.")
    document_series: dict[str, str] = Field(default_factory=lambda: dict(DOCUMENT_SERIES),
                                            description="The series of each paper; papers not named keep theirs.")
    document_symbols: dict[str, str] = Field(default_factory=lambda: dict(DOCUMENT_SYMBOLS),
                                             description="Number and symbol of each paper; fields: number, year, "
                                             "issuer_short. Papers not named keep theirs.")

    @field_validator("document_series")
    @classmethod
    def _every_series(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - set(DOCUMENT_SERIES)
        if unknown or not all(v.strip() for v in value.values()):
            raise ValueError(f"series are named for the papers {sorted(DOCUMENT_SERIES)}, not {sorted(unknown)}")
        return DOCUMENT_SERIES | value

    @field_validator("document_symbols")
    @classmethod
    def _every_symbol(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - set(DOCUMENT_SYMBOLS)
        if unknown:
            raise ValueError(f"symbols are named for the papers {sorted(DOCUMENT_SYMBOLS)}, not {sorted(unknown)}")
        for pattern in value.values():
            try:
                pattern.format(number=1, year=2026, issuer_short="UBND")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{pattern!r}: only {{number}}, {{year}} and {{issuer_short}} may appear") from exc
        return DOCUMENT_SYMBOLS | value

    def secret_values(self) -> dict[str, str]:
        return super().secret_values() | self.object_store_required()
