"""Who reaches which case, and which part of it: the one place of object-level access control in this service.

`readable(subject, action)` builds the base query of every read and write of a case; `readable_tasks` builds
that of tasks. Outside reach means 404. `Visibility` says which parts of a reachable case a caller sees: the
design is need-to-know (Law on Children Art. 21; Decree 56 Art. 33): the commune's people's committee manages
the case and sees all of it; the reporter's identity is shown only to the managers and to the intake's own
agency; other agencies see their own tasks, notes shared with participants, and no form contents.
"""

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select
from sqlalchemy.orm import aliased

from services.cases.models import Attachment, Case, CaseHistory, CaseNote, CaseTask
from services.cases.vocabulary import NoteVisibility
from services.common.auth import Subject
from services.common.permissions import Action, Agency, Scope


def reach(subject: Subject, action: Action) -> ColumnElement[bool]:
    """The condition on `Case` rows that `subject` may take `action` on."""
    jurisdiction = subject.jurisdiction.filter(Case.province_code, Case.commune_code)
    match subject.scope(action):
        case Scope.JURISDICTION:
            return jurisdiction
        case Scope.INVOLVED:
            # A task or referral to the caller's agency, or an intake its own agency made.
            task = aliased(CaseTask)  # its own alias: the condition is also used in queries over tasks
            involved = exists().where(task.case_id == Case.id, task.agency == subject.agency.value)
            return and_(jurisdiction, or_(involved, Case.intake_agency == subject.agency.value))
        case Scope.OWN:
            return Case.created_by == subject.id
        case _:
            return false()


def reaches(subject: Subject, case: Case, action: Action, task_agencies: set[str]) -> bool:
    """`reach` for one case already in memory (with the agencies its tasks are for): whether the caller may still
    take `action` on it, e.g. after a handover moved it to another commune."""
    if subject.scope(action) == Scope.OWN:
        return case.created_by == subject.id
    if not subject.jurisdiction.contains(case.province_code, case.commune_code):
        return False
    match subject.scope(action):
        case Scope.JURISDICTION:
            return True
        case Scope.INVOLVED:
            return subject.agency.value in task_agencies or case.intake_agency == subject.agency.value
        case _:
            return False


def readable(subject: Subject, action: Action = Action.CASE_READ) -> Select[tuple[Case]]:
    return select(Case).where(reach(subject, action))


def traced_history(subject: Subject) -> ColumnElement[bool]:
    """The read-only trace a commune keeps of a case it handed over or transferred (Law Art. 52(2)): the history
    rows written while it led the case, with their forms, and nothing after. Only the commune's own people (a
    commune jurisdiction that manages cases) keep it; the case itself, its tasks, notes and files go with the lead."""
    if (subject.agency != Agency.PEOPLES_COMMITTEE or subject.jurisdiction.level != "commune"
            or subject.scope(Action.CASE_READ) != Scope.JURISDICTION):
        return false()
    return CaseHistory.commune_code == subject.jurisdiction.commune


def readable_tasks(subject: Subject, action: Action = Action.TASK_UPDATE) -> Select[tuple[CaseTask]]:
    """Tasks of reachable cases; below jurisdiction scope, only the tasks of the caller's own agency."""
    query = select(CaseTask).join(Case, Case.id == CaseTask.case_id).where(reach(subject, action))
    if subject.scope(action) != Scope.JURISDICTION:
        query = query.where(CaseTask.agency == subject.agency.value)
    return query


def manages_files(subject: Subject) -> bool:
    """The case managers (the commune's people's committee, within its jurisdiction) see every file of a case."""
    return subject.agency == Agency.PEOPLES_COMMITTEE and subject.scope(Action.ATTACHMENT_READ) == Scope.JURISDICTION


def readable_attachments(subject: Subject, action: Action = Action.ATTACHMENT_READ) -> Select[tuple[Attachment, Case]]:
    """Files of reachable cases that the caller may see, with their case: managers see all of them; the agencies
    with a task (or their own intake) see the files shared with participants, and their own uploads."""
    query = select(Attachment, Case).join(Case, Case.id == Attachment.case_id).where(reach(subject, action))
    if not manages_files(subject):
        query = query.where(or_(Attachment.visibility == NoteVisibility.PARTICIPANTS.value,
                                Attachment.uploaded_by == subject.id))
    return query


@dataclass(frozen=True)
class Visibility:
    manager: bool
    reporter: bool
    own_agency: str

    def sees_task(self, task: CaseTask) -> bool:
        return self.manager or task.agency == self.own_agency

    def notes_filter(self, subject: Subject) -> ColumnElement[bool]:
        if self.manager:
            return CaseNote.visibility.in_([v.value for v in NoteVisibility])
        return or_(CaseNote.visibility == NoteVisibility.PARTICIPANTS.value, CaseNote.author_id == subject.id)


def visibility(subject: Subject, case: Case) -> Visibility:
    """Which parts of a case the caller sees. Call only for a case that came through `readable`."""
    manager = subject.agency == Agency.PEOPLES_COMMITTEE and subject.scope(Action.CASE_READ) == Scope.JURISDICTION
    return Visibility(manager=manager, reporter=manager or case.intake_agency == subject.agency.value,
                      own_agency=subject.agency.value)
