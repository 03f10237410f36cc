# ruff: noqa: E501  (the tables below are wider than a line on purpose: one row per step)
"""The intervention workflow as one table (Decree 56/2017/ND-CP, Arts. 25-32; Law on Children 2016, Arts. 47-50).

`TRANSITIONS` says, for every action: the states it may be taken from, the state it leads to, the permission
Action it needs (which roles hold it is in `services/common/permissions.py`), the form it requires, and the
deadlines it starts and stops. `DEADLINES` says how long each deadline runs and whether the law fixes it.
The API, `docs/workflow.md` (`scripts/gen_workflow_docs.py`) and the tests all read these two tables.

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
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass(frozen=True)
class Step:
    """One row of the workflow table."""

    action: str
    sources: tuple[State, ...]
    target: State | None  # None: the state does not change (transfer, separation decisions)
    permission: Action
    form: type[forms.Form]
    starts: tuple[Deadline, ...]
    stops: tuple[Deadline, ...]
    legal_step: str
    requires_running: Deadline | None = None  # the step only makes sense while this deadline runs

    def leads_to(self, state: State) -> State:
        return self.target or state


# fmt: off
TRANSITIONS: tuple[Step, ...] = (
    #    action                          from                                   to                     permission         form                         starts                 stops                        legal step
    Step("begin_assessment",             (S.RECEIVED,),                         S.ASSESSING,           A.CASE_ASSESS,     forms.NoData,                (),                    (),                          "2: the commune takes the forwarded report up"),
    Step("assess_emergency",             (S.ASSESSING,),                        S.EMERGENCY_PROTECTION, A.CASE_ASSESS,    forms.InitialAssessment,     (D.EMERGENCY_PROTECTION,), (D.ASSESSMENT,),         "2: initial assessment (Form 02), emergency test yes"),
    Step("assess_no_emergency",          (S.ASSESSING,),                        S.SPECIFIC_ASSESSMENT, A.CASE_ASSESS,     forms.InitialAssessment,     (D.SPECIFIC_ASSESSMENT,), (D.ASSESSMENT,),          "2: initial assessment (Form 02), emergency test no"),
    Step("take_emergency_measures",      (S.EMERGENCY_PROTECTION,),             S.SPECIFIC_ASSESSMENT, A.CASE_EMERGENCY,  forms.EmergencyMeasures,     (D.SPECIFIC_ASSESSMENT,), (D.EMERGENCY_PROTECTION,), "2b: emergency protection within 12 hours"),
    Step("separate_child",               (S.EMERGENCY_PROTECTION,),             S.SPECIFIC_ASSESSMENT, A.CASE_EMERGENCY,  forms.SeparationDecision,    (D.SPECIFIC_ASSESSMENT, D.SEPARATION), (D.EMERGENCY_PROTECTION,), "2c: temporary separation (Form 07)"),
    Step("extend_separation",            OPEN_STATES,                           None,                  A.CASE_EMERGENCY,  forms.SeparationExtension,   (),                    (),                          "2c: separation extended by decision", D.SEPARATION),
    Step("end_separation",               OPEN_STATES,                           None,                  A.CASE_EMERGENCY,  forms.SeparationEnd,         (),                    (D.SEPARATION,),             "2c: child returns or is placed for good", D.SEPARATION),
    Step("complete_specific_assessment", (S.SPECIFIC_ASSESSMENT,),              S.PLAN_DRAFTING,       A.CASE_ASSESS,     forms.SpecificAssessment,    (D.PLAN_DRAFTED,),     (D.SPECIFIC_ASSESSMENT,),    "3: specific assessment (Form 03) and needs meeting minutes"),
    Step("submit_plan",                  (S.PLAN_DRAFTING, S.PLAN_RETURNED),    S.AWAITING_APPROVAL,   A.CASE_PLAN,       forms.PlanSubmission,        (D.PLAN_APPROVAL,),    (D.PLAN_DRAFTED, D.PLAN_REVISION), "4: intervention plan (Form 04) within 5 working days"),
    Step("approve_plan",                 (S.AWAITING_APPROVAL,),                S.IMPLEMENTING,        A.CASE_APPROVE,    forms.PlanApproval,          (D.REVIEW,),           (D.PLAN_APPROVAL,),          "4b: chairman approves the plan (Form 05)"),
    Step("return_plan",                  (S.AWAITING_APPROVAL,),                S.PLAN_RETURNED,       A.CASE_APPROVE,    forms.PlanReturn,            (D.PLAN_REVISION,),    (D.PLAN_APPROVAL,),          "4b: chairman returns the plan for revision"),
    Step("start_review",                 (S.IMPLEMENTING,),                     S.REVIEWING,           A.CASE_REVIEW,     forms.NoData,                (),                    (D.REVIEW,),                 "6: review of the plan's results begins"),
    Step("continue_plan",                (S.REVIEWING,),                        S.IMPLEMENTING,        A.CASE_REVIEW,     forms.Review,                (D.REVIEW,),           (),                          "6: review (Form 06), the plan goes on"),
    Step("new_plan_cycle",               (S.REVIEWING,),                        S.PLAN_DRAFTING,       A.CASE_REVIEW,     forms.Review,                (D.PLAN_DRAFTED,),     (),                          "6: review (Form 06), a new plan is needed"),
    Step("close",                        (S.REVIEWING,),                        S.CLOSED,              A.CASE_CLOSE,      forms.Closure,               (),                    ALL_DEADLINES,               "6: chairman ends the plan: the child is safe and stable"),
    Step("close_early",                  tuple(s for s in OPEN_STATES if s != S.REVIEWING), S.CLOSED, A.CASE_CLOSE,  forms.EarlyClosure,          (),                    ALL_DEADLINES,               "case ends without a review (unfounded, duplicate, deceased, ...)"),
    Step("transfer",                     OPEN_STATES,                           None,                  A.CASE_TRANSFER,   forms.Transfer,              (),                    (),                          "the child moved: another commune takes the case over"),
)
# fmt: on

STEPS: dict[str, Step] = {step.action: step for step in TRANSITIONS}


@dataclass(frozen=True)
class DeadlineRule:
    """How long a deadline runs. `amount` is a number fixed by law or the name of a setting (not fixed by law)."""

    name: Deadline
    amount: int | str
    unit: Literal["hours", "days", "working_days"]
    anchor: Literal["received", "started"]  # counted from the intake or from the step that starts it
    source: str


# fmt: off
DEADLINES: dict[Deadline, DeadlineRule] = {r.name: r for r in (
    #            name                     amount                               unit            anchor      source
    DeadlineRule(D.ASSESSMENT,            "assessment_hours",                  "hours",        "received", "not fixed by law: configurable"),
    DeadlineRule(D.EMERGENCY_PROTECTION,  12,                                  "hours",        "received", "Decree 56: within 12 hours of receiving the information"),
    DeadlineRule(D.SEPARATION,            15,                                  "days",         "started",  "Decree 56: temporary separation at most 15 days unless extended"),
    DeadlineRule(D.SPECIFIC_ASSESSMENT,   "specific_assessment_working_days",  "working_days", "started",  "not fixed by law: configurable"),
    DeadlineRule(D.PLAN_DRAFTED,          5,                                   "working_days", "started",  "Decree 56: plan within 5 working days"),
    DeadlineRule(D.PLAN_APPROVAL,         "plan_approval_working_days",        "working_days", "started",  "not fixed by law: configurable (one procedure gives 7 working days in all)"),
    DeadlineRule(D.PLAN_REVISION,         "plan_revision_working_days",        "working_days", "started",  "not fixed by law: configurable"),
    DeadlineRule(D.REVIEW,                "review_interval_days",              "days",         "started",  "not fixed by law: configurable review interval"),
)}
# fmt: on

# Deadlines the intake itself starts.
INTAKE_STARTS: tuple[Deadline, ...] = (D.ASSESSMENT,)


class IllegalTransition(Exception):
    def __init__(self, action: str, position: "Position"):
        super().__init__(f"{action} is not allowed in state {position.state}")
        self.action, self.position = action, position


@dataclass(frozen=True)
class Position:
    """What the table decides on: the current state and the deadlines still running."""

    state: State
    running: frozenset[Deadline] = frozenset()


def allowed_steps(position: Position) -> list[Step]:
    return [
        step for step in TRANSITIONS
        if position.state in step.sources
        and (step.requires_running is None or step.requires_running in position.running)
    ]


def advance(position: Position, action: str) -> Position:
    """The state machine: the position after `action`, or IllegalTransition."""
    step = STEPS.get(action)
    if step is None or step not in allowed_steps(position):
        raise IllegalTransition(action, position)
    running = (position.running - set(step.stops)) | set(step.starts)
    return Position(step.leads_to(position.state), frozenset(running))


def initial_position() -> Position:
    return Position(S.RECEIVED, frozenset(INTAKE_STARTS))


def stopped_by(deadline: Deadline) -> set[Action]:
    """The permissions of the steps that meet a deadline (closing a case cancels deadlines, it does not meet them)."""
    return {step.permission for step in TRANSITIONS if deadline in step.stops and step.target != S.CLOSED}


@cache
def _calendar() -> holidays.HolidayBase:
    return holidays.country_holidays("VN")


def is_working_day(day: date) -> bool:
    """Monday to Friday, not a public holiday (lunar ones included), plus Saturdays declared working days."""
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
    """When a deadline falls due. Working days end at midnight, Vietnam time."""
    anchor = received_at if rule.anchor == "received" else started_at
    match rule.unit:
        case "hours":
            return anchor + timedelta(hours=amount)
        case "days":
            return anchor + timedelta(days=amount)
        case "working_days":
            last = add_working_days(anchor.astimezone(VIETNAM).date(), amount)
            return datetime.combine(last + timedelta(days=1), time(0), tzinfo=VIETNAM)
