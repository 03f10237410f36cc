"""Registry API shapes: `ChildCreate`, `ChildUpdate`, `ChildView` and the import, history and location shapes."""

import re
import unicodedata
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from services.common.locations import is_commune
from services.registry.reference import AT_RISK_FLAGS, ETHNIC_GROUPS, SPECIAL_GROUPS, normalize_name, normalize_phone

Sex = Literal["male", "female"]
ChildStatus = Literal["active", "moved_away", "deceased", "aged_out"]
Relationship = Literal["mother", "father", "grandparent", "sibling", "relative", "foster_parent", "guardian",
                       "other"]
SchoolLevel = Literal["preschool", "primary", "lower_secondary", "upper_secondary", "vocational"]
SchoolStatus = Literal["enrolled", "dropped_out", "not_enrolled"]
DisabilityLevel = Literal["mild", "severe", "especially_severe"]
ImportMode = Literal["all_or_nothing", "row_by_row"]
FileEncoding = Literal["utf-8", "utf-16", "cp1258"]
EARLIEST_BIRTH = date(1990, 1, 1)


def _official_commune(value: str) -> str:
    if not is_commune(value):
        raise ValueError("not an official commune/ward code")
    return value


def _ethnic_group(value: str) -> str:
    if value not in ETHNIC_GROUPS:
        raise ValueError("not one of the 54 ethnic group codes (01-54)")
    return value


def _named(value: str) -> str:
    if not normalize_name(value):
        raise ValueError("must contain letters")
    # One spelling per name: legacy encodings (cp1258) and some keyboards write tone marks as combining characters.
    return unicodedata.normalize("NFC", value)


# C0 control characters other than tab, line feed and carriage return: PostgreSQL cannot store NUL, spreadsheets
# (the XLSX export) refuse the others, and no name or address holds them.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _plain_text(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    return value


def _phone(value: str) -> str:
    phone = normalize_phone(value)
    if not 9 <= len(phone) <= 11 or not phone.startswith("0"):
        raise ValueError("not a Vietnamese phone number")
    return phone


def _risk_flag(value: str) -> str:
    if value not in AT_RISK_FLAGS:
        raise ValueError(f"unknown at-risk flag; one of {', '.join(AT_RISK_FLAGS)}")
    return value


CommuneCode = Annotated[str, StringConstraints(pattern=r"^\d{5}$"), AfterValidator(_official_commune)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                 AfterValidator(_plain_text), AfterValidator(_named)]
Phone = Annotated[str, StringConstraints(max_length=20), AfterValidator(_phone)]
IdNumber = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
EthnicGroup = Annotated[str, AfterValidator(_ethnic_group)]
GroupLetter = Literal["a", "b", "c", "d", "dd", "e", "g", "h", "i", "k", "l", "m", "n", "o"]
RiskFlag = Annotated[str, AfterValidator(_risk_flag)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                      AfterValidator(_plain_text)]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300), AfterValidator(_plain_text)]
CertificateNumber = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50), AfterValidator(_plain_text)]
assert set(GroupLetter.__args__) == set(SPECIAL_GROUPS)  # type: ignore[attr-defined]


class Guardian(BaseModel):
    """A parent or caregiver (cha, me, nguoi cham soc) and whether the child lives with them."""

    model_config = {"extra": "forbid"}

    full_name: Name
    relationship: Relationship
    phone: Phone | None = None
    personal_id: Annotated[str, StringConstraints(pattern=r"^(\d{9}|\d{12})$")] | None = None
    lives_with_child: bool = True


class SpecialGroupEntry(BaseModel):
    """Membership of one of the 14 groups of Law Art. 10, over a period."""

    model_config = {"extra": "forbid"}

    group: GroupLetter
    start: date
    end: date | None = None
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

    full_name: Name
    sex: Sex
    date_of_birth: date
    date_of_birth_estimated: bool = Field(False, description="An estimated date, e.g. for a foundling")
    ethnicity: EthnicGroup | None = Field(None, description="Ethnic group code 01-54 (GSO list)")
    nationality: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        "VN", description="ISO 3166-1 alpha-2")
    personal_id: IdNumber | None = Field(None, description="12-digit personal identification number")
    commune_code: CommuneCode = Field(description="Official commune/ward code of residence")
    address: Address | None = None
    birth_registered: bool = False
    birth_registered_on: date | None = None
    birth_registration_commune_code: CommuneCode | None = None
    birth_certificate_number: CertificateNumber | None = None
    guardians: list[Guardian] = Field(default_factory=list, max_length=10)
    school_name: ShortText | None = None
    school_level: SchoolLevel | None = None
    school_grade: Annotated[int, Field(ge=1, le=12)] | None = None
    school_status: SchoolStatus | None = None
    health_insurance_number: Annotated[str, StringConstraints(pattern=r"^([A-Z]{2}\d{13}|\d{10})$")] | None = Field(
        None, description="BHYT card: the 10-digit social insurance number, or the 15-character card code")
    health_insurance_valid_from: date | None = None
    health_insurance_valid_until: date | None = None
    disability: bool = False
    disability_level: DisabilityLevel | None = None
    special_groups: list[SpecialGroupEntry] = Field(default_factory=list, max_length=50)
    at_risk_flags: list[RiskFlag] = Field(default_factory=list, max_length=20)
    status: ChildStatus = "active"
    status_date: date | None = None


class ChildCreate(ChildFields):
    model_config = {"extra": "forbid"}

    confirm_not_duplicate: bool = Field(
        False, description="Create even though a record with the same name, date of birth and commune exists")


class ChildUpdate(BaseModel):
    """A partial update: only the fields present change. Lists (guardians, groups, flags) are replaced whole."""

    model_config = {"extra": "forbid"}

    full_name: Name | None = None
    sex: Sex | None = None
    date_of_birth: date | None = None
    date_of_birth_estimated: bool | None = None
    ethnicity: EthnicGroup | None = None
    nationality: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None
    personal_id: IdNumber | None = None
    commune_code: CommuneCode | None = None
    address: Address | None = None
    birth_registered: bool | None = None
    birth_registered_on: date | None = None
    birth_registration_commune_code: CommuneCode | None = None
    birth_certificate_number: CertificateNumber | None = None
    guardians: list[Guardian] | None = Field(None, max_length=10)
    school_name: ShortText | None = None
    school_level: SchoolLevel | None = None
    school_grade: Annotated[int, Field(ge=1, le=12)] | None = None
    school_status: SchoolStatus | None = None
    health_insurance_number: Annotated[str, StringConstraints(pattern=r"^([A-Z]{2}\d{13}|\d{10})$")] | None = None
    health_insurance_valid_from: date | None = None
    health_insurance_valid_until: date | None = None
    disability: bool | None = None
    disability_level: DisabilityLevel | None = None
    special_groups: list[SpecialGroupEntry] | None = Field(None, max_length=50)
    at_risk_flags: list[RiskFlag] | None = Field(None, max_length=20)
    status: ChildStatus | None = None
    status_date: date | None = None

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
    guardians: list[Guardian] | None = None
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
    id: uuid.UUID | None
    reason: Literal["same_personal_id", "same_name_birth_date_commune"]
    commune_code: str
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
    status: Literal["queued", "validating", "applying", "succeeded", "failed"]
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
