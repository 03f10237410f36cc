"""The workflow table and the working-day calendar, without a database."""

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cases import forms, workflow
from services.cases.vocabulary import Deadline, ReviewItem, RiskRating, State
from services.common.permissions import PERMISSIONS, Action, Role, Scope
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
        assert "close_early" in actions, state
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


def test_a_plan_ends_only_on_a_form_06_review_and_the_chairmans_decision() -> None:
    """Decree 56 Art. 30: the officer reviews (Form 06) and proposes; the chairman decides."""
    ends = [s for s in workflow.TRANSITIONS if s.target == State.CLOSED and s.action != "close_early"]
    assert [s.action for s in ends] == ["close"]
    assert ends[0].sources == (State.AWAITING_CLOSURE,) and ends[0].permission == Action.CASE_CLOSE
    into = [s for s in workflow.TRANSITIONS if s.target == State.AWAITING_CLOSURE]
    assert [(s.sources, s.form) for s in into] == [((State.REVIEWING,), forms.ClosureProposal)]
    assert issubclass(forms.ClosureProposal, forms.Review) and forms.ClosureProposal.paper == "06"
    assert Action.CASE_CLOSE in PERMISSIONS[Role.COMMUNE_CHAIRMAN]
    assert Action.CASE_CLOSE not in PERMISSIONS[Role.CHILD_PROTECTION_OFFICER]


def test_form_06_rates_every_fixed_item_once_and_a_closure_has_none_high() -> None:
    body = FORMS["propose_closure"]
    assert forms.ClosureProposal.model_validate(body).tally()[RiskRating.LOW] == len(ReviewItem)
    with pytest.raises(ValueError, match="rate each item"):
        forms.Review.model_validate(body | {"ratings": [*body["ratings"][:3], body["ratings"][0]]})
    with pytest.raises(ValueError, match="rated Cao"):
        forms.ClosureProposal.model_validate(FORMS["new_plan_cycle"])


def test_separation_keeps_the_state_and_needs_a_running_separation_to_extend() -> None:
    position = workflow.Position(State.SPECIFIC_ASSESSMENT, frozenset())
    with pytest.raises(workflow.IllegalTransition):
        workflow.advance(position, "extend_separation")
    emergency = workflow.Position(State.EMERGENCY_PROTECTION, frozenset({Deadline.EMERGENCY_PROTECTION}))
    assert "end_emergency_protection" not in {s.action for s in workflow.allowed_steps(emergency)}
    separated = workflow.advance(emergency, "separate_child")
    assert separated.state == State.EMERGENCY_PROTECTION
    assert Deadline.SEPARATION in separated.running and Deadline.EMERGENCY_PROTECTION not in separated.running
    with pytest.raises(workflow.IllegalTransition):  # one separation at a time
        workflow.advance(separated, "separate_child")
    moved_on = workflow.advance(separated, "end_emergency_protection")
    assert moved_on.state == State.SPECIFIC_ASSESSMENT and Deadline.SEPARATION in moved_on.running
    ended = workflow.advance(moved_on, "end_separation")
    assert Deadline.SEPARATION not in ended.running


@pytest.mark.parametrize("state", [State.SPECIFIC_ASSESSMENT, State.PLAN_DRAFTING, State.IMPLEMENTING,
                                   State.REVIEWING, State.AWAITING_CLOSURE])
def test_separation_is_possible_whenever_the_law_allows_it(state: State) -> None:
    """Decree 56 Art. 32(1): also when the parents refuse the plan or the child stays at risk from them."""
    assert "separate_child" in {s.action for s in workflow.allowed_steps(workflow.Position(state))}


def test_police_record_an_emergency_measure_that_meets_the_12_hour_clock() -> None:
    step = workflow.STEPS["record_emergency_measure"]
    assert Deadline.EMERGENCY_PROTECTION in step.stops and step.target is None
    assert PERMISSIONS[Role.POLICE_OFFICER][step.permission] == Scope.INVOLVED
    assert Action.CASE_EMERGENCY not in PERMISSIONS[Role.POLICE_OFFICER]  # separation stays the chairman's
    after = workflow.advance(workflow.Position(State.EMERGENCY_PROTECTION,
                                               frozenset({Deadline.EMERGENCY_PROTECTION})), step.action)
    assert after.state == State.EMERGENCY_PROTECTION and "end_emergency_protection" in {
        s.action for s in workflow.allowed_steps(after)}


def test_the_commune_where_it_happened_hands_over_only_after_the_initial_assessment() -> None:
    for state in (State.RECEIVED, State.ASSESSING, State.EMERGENCY_PROTECTION):
        assert "hand_over" not in {s.action for s in workflow.allowed_steps(workflow.Position(state))}
    for state in workflow.AFTER_INITIAL:
        assert "hand_over" in {s.action for s in workflow.allowed_steps(workflow.Position(state))}


def test_legal_deadlines_are_numbers_with_their_article_and_targets_say_they_are_not_law() -> None:
    legal = {name: rule for name, rule in workflow.DEADLINES.items() if rule.legal}
    assert {name: rule.amount for name, rule in legal.items()} == {
        Deadline.EMERGENCY_PROTECTION: 12, Deadline.SEPARATION: 15, Deadline.PLAN_DRAFTED: 5,
        Deadline.PLAN_APPROVAL: 2}
    assert "Art. 26(3)" in legal[Deadline.EMERGENCY_PROTECTION].source
    assert "Art. 28(1)" in legal[Deadline.PLAN_DRAFTED].source
    assert "Art. 28(4)" in legal[Deadline.PLAN_APPROVAL].source
    assert "Art. 32(3)" in legal[Deadline.SEPARATION].source
    for name, rule in workflow.DEADLINES.items():
        if not rule.legal:
            assert rule.source.startswith("not law"), name
    assert "Art. 30" in workflow.STEPS["close"].legal_step and "Art. 29" not in workflow.STEPS["close"].legal_step


def test_the_plan_clock_starts_at_the_initial_assessment_and_no_target_moves_it() -> None:
    for action in ("assess_emergency", "assess_no_emergency"):
        assert Deadline.PLAN_DRAFTED in workflow.STEPS[action].starts
    for step in workflow.TRANSITIONS:
        if Deadline.SPECIFIC_ASSESSMENT in step.starts + step.stops and step.target != State.CLOSED:
            assert Deadline.PLAN_DRAFTED not in step.stops, step.action
    assert [s.action for s in workflow.TRANSITIONS if Deadline.PLAN_DRAFTED in s.stops
            and s.target != State.CLOSED] == ["submit_plan"]


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
        # A measure already taken (police on a referral) meets the 12-hour clock as the assessment starts it.
        assert set(step.starts) - (set(workflow.MET_WHEN_TAKEN) if position.protected else set()) <= after.running
        position = after
        assert not (set(step.stops) - set(step.starts)) & position.running
        if position.state == State.CLOSED:
            assert position.running == frozenset()
            assert workflow.allowed_steps(position) == []
        if Deadline.SEPARATION in position.running:
            assert any(a == "separate_child" for _, a, _ in history)
        if position.state == State.AWAITING_CLOSURE:
            assert history[-1][1] == "propose_closure"
        if Deadline.PLAN_DRAFTED in position.running:
            # The legal plan clock runs from an initial assessment or a review that asked for a new plan.
            assert any(a in ("assess_emergency", "assess_no_emergency", "new_plan_cycle") for _, a, _ in history)
    # The history chains: each step starts where the previous one ended.
    state = State.RECEIVED
    for before, _, after_state in history:
        assert before == state
        state = after_state
    assert state == position.state
