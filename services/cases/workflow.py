# ruff: noqa: E501  (the tables below are wider than a line on purpose: one row per step)
"""The intervention workflow as one table (Decree 56/2017/NĐ-CP, Arts. 25-33; Law on Children 2016, Arts. 47-52).

`TRANSITIONS` says, for every action: the states it may be taken from, the state it leads to, the permission
Action it needs (which roles hold it is in `services/common/permissions.py`), the form it requires, the deadlines it
starts and stops, and the article it carries out. `DEADLINES` says how long each deadline runs, from when, and
whether the law fixes it. The API, `docs/workflow.md` (`scripts/gen_workflow_docs.py`) and the tests all read these
two tables.

Who leads (Law Art. 52(2); Decree 56 Art. 26): the commune where it happened takes the report, makes the initial
assessment (Form 02) and any emergency protection; then `hand_over` gives the case to the commune where the child
lives, which drafts, has approved and runs the plan. While the residence is unknown the commune where it happened
leads. `Case.commune_code` is always the leading commune.

"Trừ trường hợp khẩn cấp" (Art. 28(1), (4)): in an emergency the law asks for protection within 12 hours
(Art. 26(3), 31(2)) and lets the plan come as fast as the case needs. The code keeps the 5 and 2 working days as
the outer limit for emergency cases too: the law names no longer period, and a child already protected still needs
a plan no later than any other child.

Everything here is pure: no database, no clock. `Position` is what the table needs to decide (the state and the
deadlines still running); `advance` is the whole state machine.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from services.cases import forms
from services.cases.vocabulary import Deadline, State
from services.common.permissions import Action

S, D, A = State, Deadline, Action
OPEN_STATES = tuple(s for s in State if s != S.CLOSED)
ALL_DEADLINES = tuple(Deadline)
# After the initial assessment and any emergency protection: the commune where the child lives takes over.
AFTER_INITIAL = (S.SPECIFIC_ASSESSMENT, S.PLAN_DRAFTING, S.PLAN_RETURNED, S.AWAITING_APPROVAL, S.IMPLEMENTING,
                 S.REVIEWING, S.AWAITING_CLOSURE)
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass(frozen=True)
class Step:
    """One row of the workflow table."""

    action: str
    sources: tuple[State, ...]
    target: State | None  # None: the state does not change (handover, transfer, separation, recorded measures)
    permission: Action
    form: type[forms.Form]
    starts: tuple[Deadline, ...]
    stops: tuple[Deadline, ...]
    legal_step: str
    requires_running: Deadline | None = None  # the step only makes sense while this deadline runs
    unless_running: Deadline | None = None  # ... or only once this deadline no longer runs
    decision: bool = False  # a decision someone waits for (the work list shows it to whoever may take it)

    def leads_to(self, state: State) -> State:
        return self.target or state


# fmt: off
TRANSITIONS: tuple[Step, ...] = (
    #    action                          from                                   to                      permission                form                          starts                                         stops                               legal step
    Step("begin_assessment",             (S.RECEIVED,),                         S.ASSESSING,            A.CASE_ASSESS,            forms.NoData,                 (),                                            (),                                 "Decree 56 Art. 26(1)-(2): the commune where it happened takes the forwarded report up"),
    Step("assess_emergency",             (S.ASSESSING,),                        S.EMERGENCY_PROTECTION, A.CASE_ASSESS,            forms.InitialAssessment,      (D.EMERGENCY_PROTECTION, D.PLAN_DRAFTED, D.SPECIFIC_ASSESSMENT), (D.ASSESSMENT,), "Decree 56 Art. 26(2)-(3): initial assessment (Form 02), the child needs emergency protection"),
    Step("assess_no_emergency",          (S.ASSESSING,),                        S.SPECIFIC_ASSESSMENT,  A.CASE_ASSESS,            forms.InitialAssessment,      (D.PLAN_DRAFTED, D.SPECIFIC_ASSESSMENT),       (D.ASSESSMENT,),                    "Decree 56 Art. 26(2): initial assessment (Form 02), no emergency"),
    Step("take_emergency_measures",      (S.EMERGENCY_PROTECTION,),             S.SPECIFIC_ASSESSMENT,  A.CASE_EMERGENCY,         forms.EmergencyMeasures,      (),                                            (D.EMERGENCY_PROTECTION,),          "Decree 56 Art. 26(3), 31: the chairman's emergency measures within 12 hours"),
    Step("record_emergency_measure",     (S.RECEIVED, S.ASSESSING, S.EMERGENCY_PROTECTION), None,       A.CASE_EMERGENCY_RECORD,  forms.EmergencyMeasureRecord, (),                                            (D.EMERGENCY_PROTECTION,),          "Decree 56 Art. 26(3), 31(4): another competent body (police) took an emergency measure"),
    Step("end_emergency_protection",     (S.EMERGENCY_PROTECTION,),             S.SPECIFIC_ASSESSMENT,  A.CASE_ASSESS,            forms.NoData,                 (),                                            (),                                 "Decree 56 Art. 31(3)(b): the child is protected (by another body, or separated); assessment goes on", None, D.EMERGENCY_PROTECTION),
    Step("separate_child",               (S.ASSESSING, S.EMERGENCY_PROTECTION, *AFTER_INITIAL), None,   A.CASE_EMERGENCY,         forms.SeparationDecision,     (D.SEPARATION,),                               (D.EMERGENCY_PROTECTION,),          "Decree 56 Art. 32(1)-(2): temporary separation (Form 07): emergency, parents refuse the plan, or risk from them", None, D.SEPARATION),
    Step("extend_separation",            OPEN_STATES,                           None,                   A.CASE_EMERGENCY,         forms.SeparationExtension,    (),                                            (),                                 "Decree 56 Art. 32(3): separation extended, at most 15 days in all unless a competent authority requires more", D.SEPARATION, None, True),
    Step("end_separation",               OPEN_STATES,                           None,                   A.CASE_EMERGENCY,         forms.SeparationEnd,          (),                                            (D.SEPARATION,),                    "Decree 56 Art. 32(3): separation cancelled once a new Form 03 finds the parents safe", D.SEPARATION),
    Step("complete_specific_assessment", (S.SPECIFIC_ASSESSMENT,),              S.PLAN_DRAFTING,        A.CASE_ASSESS,            forms.SpecificAssessment,     (),                                            (D.SPECIFIC_ASSESSMENT,),           "Decree 56 Art. 27: specific assessment (Form 03, items a-h) and the needs meeting chaired by the chairman"),
    Step("submit_plan",                  (S.PLAN_DRAFTING, S.PLAN_RETURNED),    S.AWAITING_APPROVAL,    A.CASE_PLAN,              forms.PlanSubmission,         (D.PLAN_APPROVAL,),                            (D.PLAN_DRAFTED, D.PLAN_REVISION),  "Decree 56 Art. 28(1), (3): the plan (Form 04) within 5 working days of the initial assessment"),
    Step("approve_plan",                 (S.AWAITING_APPROVAL,),                S.IMPLEMENTING,         A.CASE_APPROVE,           forms.PlanApproval,           (D.REVIEW,),                                   (D.PLAN_APPROVAL,),                 "Decree 56 Art. 28(4)-(5): the chairman approves (Form 05) within 2 working days; sent to the bodies and the parents", None, None, True),
    Step("return_plan",                  (S.AWAITING_APPROVAL,),                S.PLAN_RETURNED,        A.CASE_APPROVE,           forms.PlanReturn,             (D.PLAN_REVISION,),                            (D.PLAN_APPROVAL,),                 "Decree 56 Art. 28(4): the chairman returns the plan for revision", None, None, True),
    Step("start_review",                 (S.IMPLEMENTING,),                     S.REVIEWING,            A.CASE_REVIEW,            forms.NoData,                 (),                                            (D.REVIEW,),                        "Decree 56 Art. 30(1): review once the cycle's tasks are done or waived"),
    Step("continue_plan",                (S.REVIEWING,),                        S.IMPLEMENTING,         A.CASE_REVIEW,            forms.Review,                 (D.REVIEW,),                                   (),                                 "Decree 56 Art. 30(1)(a), (2): review (Form 06), the plan goes on"),
    Step("new_plan_cycle",               (S.REVIEWING,),                        S.PLAN_DRAFTING,        A.CASE_REVIEW,            forms.Review,                 (D.PLAN_DRAFTED,),                             (),                                 "Decree 56 Art. 30(1)(c), (2): review (Form 06), a new plan is drafted and approved"),
    Step("propose_closure",              (S.REVIEWING,),                        S.AWAITING_CLOSURE,     A.CASE_REVIEW,            forms.ClosureProposal,        (D.CLOSURE_DECISION,),                         (),                                 "Decree 56 Art. 30(1)(b), (2): review (Form 06) proposes to end the plan to the chairman"),
    Step("close",                        (S.AWAITING_CLOSURE,),                 S.CLOSED,               A.CASE_CLOSE,             forms.ClosureDecision,        (),                                            ALL_DEADLINES,                      "Decree 56 Art. 30(1)(b): the chairman ends the plan: no more risk, the child is stable", None, None, True),
    Step("refuse_closure",               (S.AWAITING_CLOSURE,),                 S.REVIEWING,            A.CASE_CLOSE,             forms.ClosureRefusal,         (),                                            (D.CLOSURE_DECISION,),              "Decree 56 Art. 30(1)(c): the chairman does not end the plan; the review goes on", None, None, True),
    Step("close_early",                  OPEN_STATES,                           S.CLOSED,               A.CASE_CLOSE,             forms.EarlyClosure,           (),                                            ALL_DEADLINES,                      "case ends without a plan's end: unfounded, duplicate, deceased, moved abroad, aged out"),
    Step("hand_over",                    AFTER_INITIAL,                         None,                   A.CASE_TRANSFER,          forms.HandOver,               (),                                            (),                                 "Law Art. 52(2); Decree 56 Art. 26: the commune where the child lives takes the case over"),
    Step("transfer",                     OPEN_STATES,                           None,                   A.CASE_TRANSFER,          forms.Transfer,               (),                                            (),                                 "Law Art. 52(2): the child moved; the commune where the child now lives takes the case over"),
)
# fmt: on

STEPS: dict[str, Step] = {step.action: step for step in TRANSITIONS}


@dataclass(frozen=True)
class DeadlineRule:
    """How long a deadline runs. `amount` is a number fixed by law or the name of a setting (not fixed by law:
    `legal` is then False and the deadline is an internal target)."""

    name: Deadline
    amount: int | str
    unit: Literal["hours", "days", "working_days"]
    anchor: Literal["received", "started"]  # counted from the intake or from the step that starts it
    source: str

    @property
    def legal(self) -> bool:
        return isinstance(self.amount, int)


# fmt: off
DEADLINES: dict[Deadline, DeadlineRule] = {r.name: r for r in (
    #            name                     amount                                 unit            anchor      source
    DeadlineRule(D.ASSESSMENT,            "assessment_hours",                    "hours",        "received", "not law: internal target for Form 02 (Art. 26(1) says only \"ngay\": at once)"),
    DeadlineRule(D.EMERGENCY_PROTECTION,  12,                                    "hours",        "received", "Decree 56 Art. 26(3), 31(2): within 12 hours of receiving the information"),
    DeadlineRule(D.SEPARATION,            forms.SEPARATION_MAX_DAYS,             "days",         "started",  "Decree 56 Art. 32(3): the decision's duration (Form 07), at most 15 days in all unless a competent authority requires more"),
    DeadlineRule(D.SPECIFIC_ASSESSMENT,   "specific_assessment_working_days",    "working_days", "started",  "not law: internal target inside the plan's 5 working days; never moves the legal clock"),
    DeadlineRule(D.PLAN_DRAFTED,          5,                                     "working_days", "started",  "Decree 56 Art. 28(1): plan within 5 working days, counted from the initial assessment (Form 02) or the review that asks for a new plan (Art. 30(1)(c)); emergency cases too"),
    DeadlineRule(D.PLAN_APPROVAL,         2,                                     "working_days", "started",  "Decree 56 Art. 28(4): the chairman decides within 2 working days of the submission; emergency cases too"),
    DeadlineRule(D.PLAN_REVISION,         "plan_revision_working_days",          "working_days", "started",  "not law: internal target for resubmitting a returned plan"),
    DeadlineRule(D.REVIEW,                "review_interval_days",                "days",         "started",  "not law: configurable review interval (Art. 30 names none)"),
    DeadlineRule(D.CLOSURE_DECISION,      "closure_decision_working_days",       "working_days", "started",  "not law: internal target for the chairman's decision on ending the plan"),
)}
# fmt: on

# Deadlines the intake itself starts.
INTAKE_STARTS: tuple[Deadline, ...] = (D.ASSESSMENT,)
# Deadlines whose due time an emergency measure meets when the measure was taken (not when it was recorded); a
# measure taken before the assessment found it needed (police acting on a referral) meets them as they start.
MET_WHEN_TAKEN: tuple[Deadline, ...] = (D.EMERGENCY_PROTECTION,)
MEASURE_ACTIONS: frozenset[str] = frozenset({"record_emergency_measure", "take_emergency_measures"})


class IllegalTransition(Exception):
    def __init__(self, action: str, position: "Position"):
        super().__init__(f"{action} is not allowed in state {position.state}")
        self.action, self.position = action, position


@dataclass(frozen=True)
class Position:
    """What the table decides on: the current state and the deadlines still running."""

    state: State
    running: frozenset[Deadline] = frozenset()
    protected: bool = False  # an emergency measure was taken


def allowed_steps(position: Position) -> list[Step]:
    return [
        step for step in TRANSITIONS
        if position.state in step.sources
        and (step.requires_running is None or step.requires_running in position.running)
        and (step.unless_running is None or step.unless_running not in position.running)
    ]


def advance(position: Position, action: str) -> Position:
    """The state machine: the position after `action`, or IllegalTransition."""
    step = STEPS.get(action)
    if step is None or step not in allowed_steps(position):
        raise IllegalTransition(action, position)
    protected = position.protected or action in MEASURE_ACTIONS
    starts = set(step.starts) - (set(MET_WHEN_TAKEN) if protected else set())
    running = (position.running - set(step.stops)) | starts
    return Position(step.leads_to(position.state), frozenset(running), protected)


def initial_position() -> Position:
    return Position(S.RECEIVED, frozenset(INTAKE_STARTS))


def stopped_by(deadline: Deadline) -> set[Action]:
    """The permissions of the steps that meet a deadline (closing a case cancels deadlines, it does not meet them)."""
    return {step.permission for step in TRANSITIONS if deadline in step.stops and step.target != S.CLOSED}


@cache
def _calendar() -> holidays.HolidayBase:
    return holidays.country_holidays("VN")


def is_working_day(day: date) -> bool:
    """Ngày làm việc: Monday to Friday, not a public holiday (Labour Code 2019 Art. 112, lunar ones included, and
    the days the government swaps), plus Saturdays declared working days in exchange."""
    return bool(_calendar().is_working_day(day))


def add_working_days(start: date, count: int) -> date:
    """The `count`-th working day after `start` (the start day itself does not count)."""
    day = start
    remaining = count
    while remaining > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return day


def due_at(rule: DeadlineRule, amount: int, *, received_at: datetime, started_at: datetime) -> datetime:
    """When a deadline falls due. A period in days starts the day after the event and ends at midnight (24:00) of
    its last day, Vietnam time (Civil Code 2015 Arts. 147(1), 148(1)); a period in hours runs from the moment."""
    anchor = received_at if rule.anchor == "received" else started_at
    match rule.unit:
        case "hours":
            return anchor + timedelta(hours=amount)
        case "days":
            last = anchor.astimezone(VIETNAM).date() + timedelta(days=amount)
            return datetime.combine(last + timedelta(days=1), time(0), tzinfo=VIETNAM)
        case "working_days":
            last = add_working_days(anchor.astimezone(VIETNAM).date(), amount)
            return datetime.combine(last + timedelta(days=1), time(0), tzinfo=VIETNAM)
