"""The workflow table and the working-day calendar, without a database."""

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cases import forms, workflow
from services.cases.vocabulary import Deadline, State
from services.common.permissions import PERMISSIONS, Action
from tests.cases.samples import FORMS

CASE_ACTIONS = {a for a in Action if a.value.startswith("case:")}


def reachable_states() -> set[State]:
    seen, frontier = set(), [workflow.initial_position()]
    positions = set(frontier)
    while frontier:
        position = frontier.pop()
        seen.add(position.state)
        for step in workflow.allowed_steps(position):
            after = workflow.advance(position, step.action)
            if after not in positions:
                positions.add(after)
                frontier.append(after)
    return seen


def test_every_state_is_reachable_from_an_intake() -> None:
    assert reachable_states() == set(State)


def test_every_open_state_can_end_and_closed_is_final() -> None:
    for state in workflow.OPEN_STATES:
        actions = {s.action for s in workflow.allowed_steps(workflow.Position(state))}
        assert actions & {"close", "close_early"}, state
        assert "transfer" in actions
    assert workflow.allowed_steps(workflow.Position(State.CLOSED, frozenset(Deadline))) == []


def test_every_permission_is_a_case_action_some_role_holds() -> None:
    for step in workflow.TRANSITIONS:
        assert step.permission in CASE_ACTIONS
        assert any(step.permission in actions for actions in PERMISSIONS.values()), step.action


def test_every_started_deadline_is_stopped_by_a_step_that_is_not_closing() -> None:
    started = {d for step in workflow.TRANSITIONS for d in step.starts} | set(workflow.INTAKE_STARTS)
    assert started == set(Deadline) == set(workflow.DEADLINES)
    for deadline in started:
        assert workflow.stopped_by(deadline), deadline


def test_sample_forms_match_the_table() -> None:
    assert set(FORMS) == set(workflow.STEPS)
    for action, body in FORMS.items():
        workflow.STEPS[action].form.model_validate(body)


def test_closing_without_review_cannot_claim_safe_and_stable() -> None:
    with pytest.raises(ValueError, match="needs a review"):
        forms.EarlyClosure.model_validate({"reason": "safe_and_stable", "summary": "x"})


def test_separation_steps_need_a_running_separation() -> None:
    position = workflow.Position(State.SPECIFIC_ASSESSMENT, frozenset())
    with pytest.raises(workflow.IllegalTransition):
        workflow.advance(position, "extend_separation")
    separated = workflow.advance(workflow.Position(State.EMERGENCY_PROTECTION), "separate_child")
    assert Deadline.SEPARATION in separated.running
    ended = workflow.advance(separated, "end_separation")
    assert Deadline.SEPARATION not in ended.running and ended.state == State.SPECIFIC_ASSESSMENT


def test_working_days_skip_tet_and_weekends() -> None:
    # Tet 2026: Monday 16 to Friday 20 February are public holidays (lunar calendar).
    assert workflow.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 23)
    assert workflow.add_working_days(date(2026, 2, 12), 5) == date(2026, 2, 26)
    assert not workflow.is_working_day(date(2026, 2, 17))
    # Tet 2027 falls in another week: Thursday 4 to Wednesday 10 February.
    assert workflow.add_working_days(date(2027, 2, 3), 1) == date(2027, 2, 11)


def test_working_days_follow_swapped_days_and_national_day() -> None:
    # Saturday 22 August 2026 is worked in exchange for Monday 31 August; 1-2 September is National Day.
    assert workflow.is_working_day(date(2026, 8, 22))
    assert workflow.add_working_days(date(2026, 8, 28), 1) == date(2026, 9, 3)


def test_plan_deadline_ends_at_midnight_vietnam_time_after_five_working_days() -> None:
    rule = workflow.DEADLINES[Deadline.PLAN_DRAFTED]
    started = datetime(2026, 2, 12, 3, 0, tzinfo=UTC)  # Thursday 10:00 in Ha Noi
    due = workflow.due_at(rule, 5, received_at=started, started_at=started)
    assert due == datetime(2026, 2, 27, 0, 0, tzinfo=workflow.VIETNAM)


def test_emergency_deadline_counts_from_the_intake() -> None:
    rule = workflow.DEADLINES[Deadline.EMERGENCY_PROTECTION]
    received = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    due = workflow.due_at(rule, 12, received_at=received, started_at=received + timedelta(hours=5))
    assert due == received + timedelta(hours=12)


ACTIONS = sorted(workflow.STEPS)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(ACTIONS), max_size=40))
def test_random_action_sequences_never_reach_an_illegal_state(sequence: list[str]) -> None:
    position = workflow.initial_position()
    history: list[tuple[State, str, State]] = []
    for action in sequence:
        allowed = {s.action for s in workflow.allowed_steps(position)}
        if action not in allowed:
            with pytest.raises(workflow.IllegalTransition):
                workflow.advance(position, action)
            continue
        after = workflow.advance(position, action)
        step = workflow.STEPS[action]
        assert position.state in step.sources
        assert after.state == step.leads_to(position.state)
        history.append((position.state, action, after.state))
        position = after
        assert set(step.starts) <= position.running
        assert not (set(step.stops) - set(step.starts)) & position.running
        if position.state == State.CLOSED:
            assert position.running == frozenset()
            assert workflow.allowed_steps(position) == []
        if Deadline.SEPARATION in position.running:
            assert any(a == "separate_child" for _, a, _ in history)
    # The history chains: each step starts where the previous one ended.
    state = State.RECEIVED
    for before, _, after_state in history:
        assert before == state
        state = after_state
    assert state == position.state
