"""Consent and disclosure of a child's private information (thông tin bí mật đời sống riêng tư của trẻ em).

Law on Children 2016 Art. 6(11) forbids disclosing a child's private life or personal secrets without the consent
of the child from 7 years old and of the parent or guardian; Art. 21 gives the child that right to privacy; Decree
56/2017 Art. 33 lists what counts as such information (name, age, identifying marks, health, family, address,
school, the services the child receives), Art. 36 requires the same consents before it goes online; the Personal
Data Protection Law 2025 (Art. 24) asks the same of a child's personal data. The plan's own bodies (the commune,
the agencies with a task) work on the case under Decree 56 Arts. 28-31 and need no consent; anything given to
anyone else is a disclosure, recorded here, and refused unless consents cover it or a legal basis is named.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases.access import readable
from services.cases.models import Case, CaseConsent, CaseDisclosure, audit
from services.common.auth import Subject
from services.common.clock import utcnow
from services.common.errors import Conflict, NotFound, UnprocessableContent
from services.common.permissions import Action

CHILD_CONSENT_AGE = 7  # Law on Children Art. 6(11): "trẻ em từ đủ 07 tuổi trở lên"


class ConsentGiver(StrEnum):
    """Người đồng ý: the child (from 7 years old), a parent, or the guardian (người giám hộ)."""

    CHILD = "child"
    PARENT = "parent"
    GUARDIAN = "guardian"


class DisclosurePurpose(StrEnum):
    """What the information is given for."""

    MEDIA = "media"  # báo chí, truyền thông (Decree 56 Art. 33; Circular on press coverage of children)
    ONLINE_PUBLICATION = "online_publication"  # đưa lên môi trường mạng (Decree 56 Art. 36)
    SERVICE_OUTSIDE_PLAN = "service_outside_plan"  # a provider the plan did not name
    RESEARCH = "research"
    OTHER = "other"


class DisclosureBasis(StrEnum):
    """Why a disclosure is lawful: the consents it rests on, or a legal exception named with its reference."""

    CONSENT = "consent"
    # Law on Children Art. 6(7): information about an abused child may not be withheld from a competent authority
    # (investigating police, procuracy, court) that asks for it.
    COMPETENT_AUTHORITY = "competent_authority"
    # Personal Data Protection Law 2025: processing without consent to protect the life or health of the child.
    VITAL_INTEREST = "vital_interest"


LABELS: dict[str, tuple[str, str]] = {
    "child": ("Trẻ em (từ đủ 7 tuổi)", "The child (7 or older)"),
    "parent": ("Cha, mẹ", "Parent"),
    "guardian": ("Người giám hộ", "Guardian"),
    "media": ("Báo chí, truyền thông", "Press and media"),
    "online_publication": ("Đưa lên môi trường mạng", "Publication online"),
    "service_outside_plan": ("Dịch vụ ngoài kế hoạch", "A service outside the plan"),
    "research": ("Nghiên cứu", "Research"),
    "other": ("Khác", "Other"),
    "consent": ("Có sự đồng ý", "Consent"),
    "competent_authority": ("Yêu cầu của cơ quan có thẩm quyền", "Request of a competent authority"),
    "vital_interest": ("Bảo vệ tính mạng, sức khỏe của trẻ em", "To protect the child's life or health"),
}


async def _managed_case(session: AsyncSession, subject: Subject, case_id: uuid.UUID, action: Action,
                        *, lock: bool = False) -> Case:
    query = readable(subject, action).where(Case.id == case_id)
    if lock:
        query = query.with_for_update(of=Case)
    case = (await session.execute(query)).scalar_one_or_none()
    if case is None:
        raise NotFound("no such case")
    return case


async def record_consent(session: AsyncSession, subject: Subject, case_id: uuid.UUID, *, given_by: ConsentGiver,
                         giver_name: str | None, guardian_id: uuid.UUID | None, child_age_years: int | None,
                         purpose: DisclosurePurpose, scope: str, recipient: str | None,
                         given_at: datetime) -> CaseConsent:
    case = await _managed_case(session, subject, case_id, Action.CASE_CONSENT)
    now = utcnow()
    if given_at > now:
        raise UnprocessableContent("consent cannot be given in the future")
    if given_by == ConsentGiver.CHILD:
        age = child_age_years if child_age_years is not None else case.child_age_years
        if age is None or age < CHILD_CONSENT_AGE:
            # A child under 7 is not asked to consent in law: the parent's or guardian's consent is the one needed.
            raise UnprocessableContent("a child gives consent from 7 years old (Law on Children Art. 6(11))")
        child_age_years = age
    consent = CaseConsent(id=uuid.uuid4(), case_id=case.id, given_by=given_by.value, giver_name=giver_name,
                          guardian_id=guardian_id, child_age_years=child_age_years, purpose=purpose.value,
                          scope=scope, recipient=recipient, given_at=given_at, recorded_at=now,
                          recorded_by=subject.id)
    session.add(consent)
    await session.flush()
    await audit.record(session, subject, "record_consent", "case", str(case.id), purpose=f"consent {consent.id}")
    return consent


async def withdraw_consent(session: AsyncSession, subject: Subject, case_id: uuid.UUID, consent_id: uuid.UUID,
                           note: str | None) -> CaseConsent:
    case = await _managed_case(session, subject, case_id, Action.CASE_CONSENT)
    consent = (await session.execute(
        select(CaseConsent).where(CaseConsent.id == consent_id, CaseConsent.case_id == case.id)
        .with_for_update())).scalar_one_or_none()
    if consent is None:
        raise NotFound("no such consent on this case")
    if consent.withdrawn_at is not None:
        raise Conflict("the consent was already withdrawn", withdrawn_at=consent.withdrawn_at.isoformat())
    consent.withdrawn_at, consent.withdrawn_by, consent.withdrawal_note = utcnow(), subject.id, note
    consent.version += 1
    await session.flush()
    await audit.record(session, subject, "withdraw_consent", "case", str(case.id), purpose=f"consent {consent.id}")
    return consent


async def list_consents(session: AsyncSession, subject: Subject, case_id: uuid.UUID) -> list[CaseConsent]:
    case = await _managed_case(session, subject, case_id, Action.CASE_CONSENT)
    await audit.record(session, subject, "read", "case_consents", str(case.id))
    return list((await session.execute(
        select(CaseConsent).where(CaseConsent.case_id == case.id).order_by(CaseConsent.given_at, CaseConsent.id)
    )).scalars())


def missing_consents(case: Case, consents: list[CaseConsent], purpose: DisclosurePurpose) -> list[str]:
    """Who still has to consent for `purpose`: a parent or guardian always, and the child unless the child is
    known to be under 7 (an unknown age counts as 7 or older: the safer reading)."""
    live = [c for c in consents if c.withdrawn_at is None and c.purpose == purpose.value and c.case_id == case.id]
    missing = []
    if not any(c.given_by in (ConsentGiver.PARENT.value, ConsentGiver.GUARDIAN.value) for c in live):
        missing.append("parent_or_guardian")
    child_under_7 = case.child_age_years is not None and case.child_age_years < CHILD_CONSENT_AGE
    if not child_under_7 and not any(c.given_by == ConsentGiver.CHILD.value for c in live):
        missing.append("child")
    return missing


async def disclose(session: AsyncSession, subject: Subject, case_id: uuid.UUID, *, recipient: str,
                   purpose: DisclosurePurpose, information: str, basis: DisclosureBasis,
                   consent_ids: list[uuid.UUID], legal_reference: str | None) -> CaseDisclosure:
    """Record information given outside the plan's bodies; refused (409) unless it rests on live consents that
    cover its purpose, or on a legal exception named with its reference (422 without one)."""
    case = await _managed_case(session, subject, case_id, Action.CASE_DISCLOSE, lock=True)
    if basis == DisclosureBasis.CONSENT:
        consents = list((await session.execute(
            select(CaseConsent).where(CaseConsent.case_id == case.id, CaseConsent.id.in_(consent_ids))
            .with_for_update())).scalars()) if consent_ids else []
        if len(consents) != len(set(consent_ids)):
            raise NotFound("a consent named is not one of this case")
        missing = missing_consents(case, consents, purpose)
        if missing:
            raise Conflict("the consents named do not cover this disclosure: it may not be made",
                           missing_consents=missing)
        if legal_reference is not None:
            raise UnprocessableContent("a legal reference goes with a legal exception, not with consent")
    else:
        if consent_ids:
            raise UnprocessableContent("a disclosure on a legal exception names no consents")
        if not legal_reference:
            raise UnprocessableContent("name the legal exception: the request's document number or the article")
    disclosure = CaseDisclosure(id=uuid.uuid4(), case_id=case.id, recipient=recipient, purpose=purpose.value,
                                information=information, basis=basis.value, consent_ids=sorted(set(consent_ids)),
                                legal_reference=legal_reference, disclosed_at=utcnow(), disclosed_by=subject.id,
                                agency=subject.agency.value)
    session.add(disclosure)
    await session.flush()
    await audit.record(session, subject, "disclose", "case", str(case.id), purpose=f"disclosure {disclosure.id}",
                       detail={"basis": basis.value, "purpose": purpose.value})
    return disclosure


async def list_disclosures(session: AsyncSession, subject: Subject, case_id: uuid.UUID) -> list[CaseDisclosure]:
    case = await _managed_case(session, subject, case_id, Action.CASE_DISCLOSE)
    await audit.record(session, subject, "read", "case_disclosures", str(case.id))
    return list((await session.execute(
        select(CaseDisclosure).where(CaseDisclosure.case_id == case.id)
        .order_by(CaseDisclosure.disclosed_at, CaseDisclosure.id))).scalars())
