"""Issue 7, faults (short form for CI): under load, each service is SIGKILLed and restarted, then the object store
(issue 12), then PostgreSQL is stopped hard and started again; nothing acknowledged is lost or doubled, the
statistics converge to an independent count, every service recovers by itself, and the gateway refuses calls to a
stopped service (and files while the store is down) at once.

The long form with more load and rounds is `bench/faults.py`.
"""

from collections.abc import Iterator

import pytest

from tests.faults.harness import UNAVAILABLE_WITHIN_SECONDS, DrillResult, FaultSystem, drill

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def system() -> Iterator[FaultSystem]:
    running = FaultSystem.start()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
async def result(system: FaultSystem) -> DrillResult:
    return await drill(system, rounds=1, workers=3, pause=0.1, settle=0.5, down_for=0.0, pg_down_for=1.0)


async def test_the_faults_hit_the_load(result: DrillResult) -> None:
    assert [o.fault for o in result.outcomes] == ["SIGKILL registry", "SIGKILL cases", "SIGKILL reporting",
                                                  "SIGKILL gateway", "SIGKILL object store", "restart PostgreSQL"]
    assert result.log.retried > 0, "no record needed a retry: the faults missed the load"
    assert result.verdict.intakes > 20 and result.verdict.children > 5


async def test_no_acknowledged_intake_is_lost(result: DrillResult) -> None:
    verdict = result.verdict
    assert verdict.unreadable_cases == []
    assert verdict.unreadable_children == []
    # Every record in the producers' databases was acknowledged to the driver, and the other way round.
    assert verdict.cases_in_database == verdict.intakes
    assert verdict.children_in_database == verdict.children


async def test_retries_with_the_same_key_create_no_duplicate(result: DrillResult) -> None:
    verdict = result.verdict
    assert verdict.keys_with_duplicates == {}
    assert verdict.keys_with_several_ids == {}
    assert verdict.children_duplicated == {}
    assert result.log.intake_statuses[200] >= 20  # the replayed keys answered with their first case


async def test_statistics_converge_to_the_independent_count(result: DrillResult) -> None:
    verdict = result.verdict
    assert verdict.independent == {"VV01": verdict.intakes, "TE01": verdict.children}
    assert verdict.reported == verdict.independent
    assert verdict.converged_after_seconds is not None


async def test_a_stopped_service_is_refused_at_once_as_problem_json(result: DrillResult) -> None:
    for outcome in result.outcomes[:3]:
        assert outcome.probes, outcome.fault
        for probe in outcome.probes:
            assert probe.status == 503 and probe.problem_json, (outcome.fault, probe)
            assert probe.seconds < UNAVAILABLE_WITHIN_SECONDS, (outcome.fault, probe)


async def test_with_the_object_store_killed_files_are_refused_at_once_and_come_back(result: DrillResult) -> None:
    (store,) = [o for o in result.outcomes if o.fault == "SIGKILL object store"]
    assert store.probes
    for probe in store.probes:
        assert probe.status == 503 and probe.problem_json, probe
        assert probe.seconds < UNAVAILABLE_WITHIN_SECONDS, probe
    assert store.restarted_processes == []
    # Intakes never needed the store: they were acknowledged while it was down.
    assert any(store.stopped_at < t < store.ready_at for t in result.log.intake_acknowledged_at)


async def test_services_recover_from_a_postgresql_restart_by_themselves(result: DrillResult) -> None:
    restart = result.outcomes[-1]
    assert restart.fault == "restart PostgreSQL"
    assert restart.restarted_processes == []  # and every /readyz answered 200 again (the drill waits for it)
    # The load went on after it: intakes were acknowledged once PostgreSQL was back.
    assert any(t > restart.ready_at for t in result.log.intake_acknowledged_at)


async def test_calls_while_postgresql_is_down_are_refused_as_503(result: DrillResult) -> None:
    restart = result.outcomes[-1]
    assert restart.probes
    for probe in restart.probes:
        assert probe.status == 503 and probe.problem_json, probe
        assert probe.seconds < UNAVAILABLE_WITHIN_SECONDS, probe


async def test_no_call_answered_a_server_error_sign_ins_included(result: DrillResult) -> None:
    # Every attempt of the load and every sign-in, wherever it happened (the drill's own probes sign in too): a
    # fault explains a 503, nothing explains a 500.
    assert result.log.server_errors == {}
    assert any(answer.startswith("sign-in") or answer == "503" for answer in result.log.failures), (
        "the faults never reached the load: the check above would prove nothing")
