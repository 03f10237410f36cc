"""What a list screen shows of a case beside its codes: the commune's name, the state's label, the child's first
name and age, the next due time. Rows of the case list and of the work list carry them, so a frontend needs no
request per row."""

from services.cases import workflow
from services.cases.vocabulary import STATES, Deadline, State
from services.common.locations import communes


def state_label(state: str, language: str = "vi") -> str:
    return STATES.label(state, language)


def commune_name(code: str) -> str | None:
    commune = communes().get(code)
    return commune.name if commune else None


def step_of(kind: str, name: str, actions: list[str]) -> str | None:
    """The workflow action a row of the work list asks for, from the table: the decision's first action, or the
    step that meets the deadline; a task is done on the task itself (none)."""
    if kind == "decision":
        return actions[0]
    if kind == "deadline" and name in Deadline.__members__.values():
        return next((step.action for step in workflow.TRANSITIONS
                     if Deadline(name) in step.stops and step.target != State.CLOSED), None)
    return None
