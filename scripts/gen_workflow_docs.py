"""Write `docs/workflow.md` from the workflow table (`services/cases/workflow.py`) and the permission table.

    python -m scripts.gen_workflow_docs          # write the file
    python -m scripts.gen_workflow_docs --check  # exit 1 if the committed file differs
"""

import sys
from pathlib import Path

from services.cases import vocabulary, workflow
from services.cases.settings import CasesSettings
from services.common import terms
from services.common.permissions import PERMISSIONS

TARGET = Path(__file__).resolve().parent.parent / "docs" / "workflow.md"


def _roles(step: workflow.Step) -> str:
    return ", ".join(role.value for role, actions in PERMISSIONS.items() if step.permission in actions)


def _fields(step: workflow.Step) -> str:
    fields = step.form.model_fields
    if not fields:
        return "-"
    return ", ".join(name if info.is_required() else f"{name}?" for name, info in fields.items())


def _names(values: tuple[object, ...]) -> str:
    if values == workflow.ALL_DEADLINES:
        return "all (cancelled)"
    return ", ".join(str(v) for v in values) or "-"


def _module_doc() -> list[str]:
    """The table's own explanation of who leads and of "except in an emergency"."""
    doc = workflow.__doc__ or ""
    paragraphs = [p for p in doc.split("\n\n") if p.startswith(("Who leads", '"Trừ'))]
    return ["## Who leads, and emergencies", "", *"\n\n".join(paragraphs).splitlines()]


def diagram() -> list[str]:
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> received : intake (Form 01)"]
    for step in workflow.TRANSITIONS:
        if step.target is None:
            continue
        for source in step.sources:
            lines.append(f"    {source} --> {step.target} : {step.action}")
    lines += ["    closed --> [*]", "```"]
    return lines


def deadline_rows() -> list[str]:
    defaults = CasesSettings.model_fields
    rows = ["| deadline | runs for | counted from | law or target | started by | met by |",
            "|---|---|---|---|---|---|"]
    for name, rule in workflow.DEADLINES.items():
        if isinstance(rule.amount, int):
            amount, source = f"{rule.amount} {rule.unit.replace('_', ' ')}", rule.source
        else:
            default = defaults[rule.amount].default
            amount = f"{default} {rule.unit.replace('_', ' ')}"
            source = f"{rule.source}: `CASES_{rule.amount.upper()}`"
        started = [s.action for s in workflow.TRANSITIONS if name in s.starts]
        if name in workflow.INTAKE_STARTS:
            started.insert(0, "intake")
        met = [s.action for s in workflow.TRANSITIONS if name in s.stops and s.target != vocabulary.State.CLOSED]
        anchor = "the intake" if rule.anchor == "received" else "the starting step"
        rows.append(f"| {name} | {amount} | {anchor} | {source} | {', '.join(started)} | {', '.join(met)} |")
    return rows


def render() -> str:
    lines = [
        "# Case workflow (Decree 56/2017/NĐ-CP, Arts. 25-33; Law on Children 2016, Arts. 47-52)",
        "",
        "Generated from `services/cases/workflow.py` and `services/common/permissions.py` by",
        "`python -m scripts.gen_workflow_docs`; do not edit by hand (a test compares this file with the tables).",
        "",
        "Each action is its own operation, generated from the table: `POST /v1/cases/{id}/actions/<action>`",
        "(operationId `takeAction` + the action in CamelCase, `takeActionSubmitPlan`), the step's form as its typed",
        "JSON body and `If-Match` set to the case's ETag. An action not allowed in the current state answers 409",
        "with the allowed actions; a stale ETag 412 with the current one; a missing one 428. Working days skip",
        "weekends and Vietnam's public holidays, lunar ones included (`holidays` package), and count Saturdays",
        "declared working days; a period in days or working days starts the day after the event and ends at",
        "midnight, Vietnam time (Civil Code 2015 Arts. 147-148).",
        "",
        *_module_doc(),
        "",
        "## States",
        "",
        *diagram(),
        "",
        "Actions that keep the state (not drawn): "
        + ", ".join(f"`{s.action}`" for s in workflow.TRANSITIONS if s.target is None) + ".",
        "",
        "## Actions",
        "",
        "Fields marked `?` are optional. Roles come from the permission table.",
        "",
        "| action | from | to | permission | roles | form: fields | starts | stops | legal step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for step in workflow.TRANSITIONS:
        sources = "any open state" if step.sources == workflow.OPEN_STATES else ", ".join(step.sources)
        if step.requires_running:
            sources += f" (while {step.requires_running} runs)"
        if step.unless_running:
            sources += f" (once {step.unless_running} no longer runs)"
        lines.append(
            f"| {step.action} | {sources} | {step.target or 'same'} | {step.permission} | {_roles(step)} "
            f"| {step.form.__name__}: {_fields(step)} | {_names(step.starts)} | {_names(step.stops)} "
            f"| {step.legal_step} |"
        )
    lines += ["", "## Deadlines", "", *deadline_rows(), "",
              "A deadline is *missed* when the periodic check finds it running past its due time "
              "(`case.deadline_missed`, once) or when it is met late. Closing a case cancels running deadlines.",
              "", "## Who sees what", "",
              "All object filtering is in `services/cases/access.py` (`readable`); a case out of reach answers 404.",
              "",
              "- The commune's people's committee (child-protection officer, chairman) manages the cases of its "
              "commune and sees all of each: reporter, forms in the history, plan, every task and note.",
              "- Hotline operators read back only the intakes they made.",
              "- After a handover or transfer the new leading commune sees the case; the commune that gave it away "
              "keeps a read-only trace: the history rows written while it led the case (`GET "
              "/v1/cases/{id}/history`), nothing after, and no longer the case, its tasks, notes or files.",
              "- Police record the emergency measure they took on a case that involves them (a referral or their "
              "own intake); separation (Form 07) stays the chairman's decision (Decree 56 Art. 32(2)).",
              "- Health, police, education and justice officers, at any level, see the cases of their area that "
              "involve their agency (a task or referral to it, or an intake it made): their own tasks, notes shared "
              "with participants and their own notes; never the reporter (unless their agency made the intake), the "
              "plan or the forms. Only a task or referral (never its own intake) lets an agency open the child's "
              "registry record.",
              "- The provincial oversight (`province_child_affairs`: the Department of Health, in charge of child "
              "affairs since 2025) reads the cases of its province as summaries: state, dates, categories, "
              "deadlines; no reporter, no child's name or place, no free text, tasks or notes (Law Art. 21).",
              "- The commune that leads a case (the residence commune after a handover, Law Art. 52(2)) reads the "
              "linked child in the registry, naming the case (docs/registry.md).",
              "- Disclosing a child's information outside the plan's bodies needs the consents of the child (from 7) "
              "and of a parent or guardian, or a named legal exception (Law Art. 6(11), 21; Decree 56 Art. 33, 36): "
              "`POST /v1/cases/{id}/consents`, `POST /v1/cases/{id}/disclosures` (refused with 409 and "
              "`missing_consents`; audited).",
              "- A sexual-abuse report creates a referral task for the police at once (Joint Circular 01/2022).",
              "", "## Values", ""]
    for title, enum in (("States", vocabulary.State), ("Categories (Decree 56 Arts. 25-30)", vocabulary.CaseCategory),
                        ("Abuse forms (Law Art. 4)", vocabulary.AbuseForm),
                        ("Risk forms (Law Art. 49)", vocabulary.RiskForm),
                        ("Special-circumstance groups (Law Art. 10)", terms.SpecialGroup),
                        ("Channels (Form 01)", vocabulary.Channel),
                        ("Separation grounds (Decree 56 Art. 32(1))", vocabulary.SeparationGround),
                        ("Form 06 items", vocabulary.ReviewItem), ("Task statuses", vocabulary.TaskStatus),
                        ("Environments", vocabulary.Environment), ("Closure reasons", vocabulary.ClosureReason),
                        ("Deadlines", vocabulary.Deadline), ("Task agencies", vocabulary.TaskAgency),
                        ("Measures (Law Art. 50(2))", vocabulary.Measure),
                        ("Review ratings (Form 06)", vocabulary.RiskRating)):
        lines.append(f"- {title}: " + ", ".join(f"`{v.value}`" for v in enum))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        return 0 if TARGET.exists() and TARGET.read_text(encoding="utf-8") == text else 1
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
