"""Registry API shapes: `ChildCreate`, `ChildUpdate`, `ChildView` and the import, history and location shapes.

Every text is normalised here, before anything is stored or compared (`reference.clean_text`, `clean_name`,
`ascii_digits`); every date and number has a range.
"""

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints, model_validator

from services.common.locations import is_commune
from services.common.sync import SyncItem, SyncPage
from services.registry.reference import ascii_digits, clean_name, clean_text, normalize_name, normalize_phone
from services.registry.vocabulary import (
    AtRiskFlag,
    ChildStatus,
    DisabilityLevel,
    Ethnicity,
    ImportStatus,
    Relationship,
    SchoolLevel,
    SchoolStatus,
    Sex,
    SpecialGroup,
)

ImportMode = Literal["all_or_nothing", "row_by_row"]
FileEncoding = Literal["utf-8", "utf-16", "cp1258"]
# Outer bounds of any date the registry stores; the rules of `service.check_record` narrow them per field.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2100, 12, 31)


def _official_commune(value: str) -> str:
    if not is_commune(value):
        raise ValueError("not an official commune/ward code")
    return value


def _named(value: str) -> str:
    name = clean_name(value)
    if not normalize_name(name):
        raise ValueError("must contain letters")
    return name


# C0 control characters other than tab, line feed and carriage return: PostgreSQL cannot store NUL, spreadsheets
# (the XLSX export) refuse the others, and no name or address holds them.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _plain_text(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    return clean_text(value)


def _phone(value: str) -> str:
    phone = normalize_phone(value)
    if not 9 <= len(phone) <= 11 or not phone.startswith("0"):
        raise ValueError("not a Vietnamese phone number")
    return phone


def _digits(value: Any) -> Any:
    return ascii_digits(value) if isinstance(value, str) else value


def _code(value: Any) -> Any:
    return ascii_digits(value).upper() if isinstance(value, str) else value


Day = Annotated[date, Field(ge=EARLIEST_DATE, le=LATEST_DATE)]
CommuneCode = Annotated[str, BeforeValidator(_digits), StringConstraints(pattern=r"^[0-9]{5}$"),
                        AfterValidator(_official_commune)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_plain_text),
                 AfterValidator(_named)]
Phone = Annotated[str, StringConstraints(max_length=20), AfterValidator(_plain_text), AfterValidator(_phone)]
IdNumber = Annotated[str, BeforeValidator(_digits), StringConstraints(pattern=r"^[0-9]{12}$")]
OldOrNewIdNumber = Annotated[str, BeforeValidator(_digits), StringConstraints(pattern=r"^([0-9]{9}|[0-9]{12})$")]
HealthInsuranceNumber = Annotated[str, BeforeValidator(_code),
                                  StringConstraints(pattern=r"^([A-Z]{2}[0-9]{13}|[0-9]{10})$")]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                      AfterValidator(_plain_text)]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300), AfterValidator(_plain_text)]
CertificateNumber = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50), AfterValidator(_plain_text)]
Nationality = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Grade = Annotated[int, Field(ge=1, le=12)]


class Guardian(BaseModel):
    """A parent or caregiver (cha, mẹ, người chăm sóc) and whether the child lives with them. `id` is given by the
    registry and stays with the guardian; send it back unchanged when you edit the list (a case names a guardian
    by this id)."""

    model_config = {"extra": "forbid", "use_enum_values": True}

    id: uuid.UUID | None = Field(None, description="Kept when present; a new guardian gets one")
    full_name: Name
    relationship: Relationship
    phone: Phone | None = None
    personal_id: OldOrNewIdNumber | None = None
    lives_with_child: bool = True


class GuardianRead(Guardian):
    id: uuid.UUID  # type: ignore[assignment]


class SpecialGroupEntry(BaseModel):
    """Membership of one of the 14 groups of Law Art. 10, over a period."""

    model_config = {"extra": "forbid", "use_enum_values": True}

    group: SpecialGroup
    start: Day
    end: Day | None = None
    supported: bool = Field(False, description="The child receives support for this circumstance")

    @model_validator(mode="after")
    def _period(self) -> "SpecialGroupEntry":
        if self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        return self


class SpecialGroupRead(SpecialGroupEntry):
    recorded_by: str
    recorded_at: datetime


class ChildFields(BaseModel):
    """Every field of the record a caller may write. Create requires the identity; update takes any subset."""

    model_config = {"use_enum_values": True}

    full_name: Name
    sex: Sex
    date_of_birth: Day
    date_of_birth_estimated: bool = Field(False, description="An estimated date, e.g. for a foundling")
    ethnicity: Ethnicity | None = Field(None, description="Ethnic group code 01-54 (GSO list of 1979)")
    nationality: Nationality = Field("VN", description="ISO 3166-1 alpha-2")
    personal_id: IdNumber | None = Field(None, description="12-digit personal identification number")
    commune_code: CommuneCode = Field(description="Official commune/ward code of residence")
    address: Address | None = None
    birth_registered: bool = False
    birth_registered_on: Day | None = None
    birth_registration_commune_code: CommuneCode | None = None
    birth_certificate_number: CertificateNumber | None = None
    guardians: list[Guardian] = Field(default_factory=list, max_length=10)
    school_name: ShortText | None = None
    school_level: SchoolLevel | None = None
    school_grade: Grade | None = None
    school_status: SchoolStatus | None = None
    health_insurance_number: HealthInsuranceNumber | None = Field(
        None, description="BHYT card: the 10-digit social insurance number, or the 15-character card code")
    health_insurance_valid_from: Day | None = None
    health_insurance_valid_until: Day | None = None
    disability: bool = False
    disability_level: DisabilityLevel | None = None
    special_groups: list[SpecialGroupEntry] = Field(default_factory=list, max_length=50)
    at_risk_flags: list[AtRiskFlag] = Field(default_factory=list, max_length=20)
    status: ChildStatus = ChildStatus.ACTIVE
    status_date: Day | None = None


class ChildCreate(ChildFields):
    model_config = {"extra": "forbid", "use_enum_values": True}

    confirm_not_duplicate: bool = Field(
        False, description="Create even though a record with the same name, date of birth and commune exists")


class ChildUpdate(BaseModel):
    """A partial update: only the fields present change. Lists (guardians, groups, flags) are replaced whole."""

    model_config = {"extra": "forbid", "use_enum_values": True}

    full_name: Name | None = None
    sex: Sex | None = None
    date_of_birth: Day | None = None
    date_of_birth_estimated: bool | None = None
    ethnicity: Ethnicity | None = None
    nationality: Nationality | None = None
    personal_id: IdNumber | None = None
    commune_code: CommuneCode | None = None
    address: Address | None = None
    birth_registered: bool | None = None
    birth_registered_on: Day | None = None
    birth_registration_commune_code: CommuneCode | None = None
    birth_certificate_number: CertificateNumber | None = None
    guardians: list[Guardian] | None = Field(None, max_length=10)
    school_name: ShortText | None = None
    school_level: SchoolLevel | None = None
    school_grade: Grade | None = None
    school_status: SchoolStatus | None = None
    health_insurance_number: HealthInsuranceNumber | None = None
    health_insurance_valid_from: Day | None = None
    health_insurance_valid_until: Day | None = None
    disability: bool | None = None
    disability_level: DisabilityLevel | None = None
    special_groups: list[SpecialGroupEntry] | None = Field(None, max_length=50)
    at_risk_flags: list[AtRiskFlag] | None = Field(None, max_length=20)
    status: ChildStatus | None = None
    status_date: Day | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> "ChildUpdate":
        for name in ("full_name", "sex", "date_of_birth", "commune_code", "status", "nationality"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be removed")
        return self


class ChildView(BaseModel):
    """A child as one caller may see it: only the fields of the caller's agency are present (see `project`)."""

    id: uuid.UUID
    revision: int | None = None
    full_name: str | None = None
    birth_year: int | None = None
    sex: Sex | None = None
    date_of_birth: date | None = None
    date_of_birth_estimated: bool | None = None
    age: int | None = None
    ethnicity: str | None = None
    nationality: str | None = None
    personal_id: str | None = None
    province_code: str | None = None
    commune_code: str | None = None
    address: str | None = None
    birth_registered: bool | None = None
    birth_registered_on: date | None = None
    birth_registration_commune_code: str | None = None
    birth_certificate_number: str | None = None
    guardians: list[GuardianRead] | None = None
    school_name: str | None = None
    school_level: str | None = None
    school_grade: int | None = None
    school_status: str | None = None
    health_insurance_number: str | None = None
    health_insurance_valid_from: date | None = None
    health_insurance_valid_until: date | None = None
    health_insurance_entitled: bool | None = Field(None, description="Under 6: entitled to State-paid BHYT")
    disability: bool | None = None
    disability_level: str | None = None
    special_groups: list[SpecialGroupRead] | None = None
    at_risk: bool | None = None
    at_risk_flags: list[str] | None = None
    status: ChildStatus | None = None
    status_date: date | None = None
    merged_ids: list[uuid.UUID] | None = Field(None, description="Retired records merged into this one")
    resolved_from: uuid.UUID | None = Field(None, description="The merged id that was asked for, if any")
    created_at: datetime | None = None
    updated_at: datetime | None = None


class DuplicateCandidate(BaseModel):
    """A likely duplicate. Outside the caller's jurisdiction only the reason is given: neither the record nor its
    commune."""

    id: uuid.UUID | None
    reason: Literal["same_personal_id", "same_name_birth_date_commune"]
    commune_code: str | None = None
    full_name: str | None = None
    date_of_birth: date | None = None


class MergeRequest(BaseModel):
    model_config = {"extra": "forbid"}

    merged_child_id: uuid.UUID = Field(description="The record to retire into this one")


class RevisionRead(BaseModel):
    revision: int
    at: datetime
    actor_id: str
    actor_role: str
    actor_agency: str
    change: str
    changes: dict[str, Any]


class ImportJobRead(BaseModel):
    id: uuid.UUID
    status: ImportStatus
    mode: ImportMode
    file_format: str
    total_rows: int | None
    rows_done: int
    created_count: int
    duplicate_count: int
    error_count: int
    failure: str | None
    created_at: datetime
    finished_at: datetime | None
    errors_url: str


class ProvinceRead(BaseModel):
    code: str
    name: str
    division_type: str


class CommuneRead(BaseModel):
    code: str
    name: str
    division_type: str
    province_code: str


class AddressConversion(BaseModel):
    """A pre-July-2025 address (with its district) mapped onto the current commune."""

    old_ward: str | None
    old_district: str | None
    old_province: str | None
    old_ward_code: str | None
    commune: CommuneRead | None
    province: ProvinceRead | None


class ChildChange(SyncItem[ChildView]):
    """A child record that changed: as you may see it, or a tombstone when it left your reach or was merged."""


class ChildChangePage(SyncPage[ChildChange]):
    """Changes of the children you can list, in the order they were made."""
