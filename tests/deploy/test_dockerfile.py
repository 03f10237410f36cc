"""deploy/Dockerfile, checked by reading it (no Docker engine here): what it copies exists and reaches the build, the
project it installs carries every module and migration the containers run, and the runtime stage is locked down."""

import ast
import fnmatch
import importlib
import json
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy.services import SERVICES
from scripts.stack import ROOT
from tests.deploy.support import DEPLOY

DOCKERFILE = DEPLOY / "Dockerfile"
IGNORE_FILE = DEPLOY / "Dockerfile.dockerignore"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(path: Path) -> list[Stage]:
    """Instructions per stage, with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            assert len(parts) == 3 and parts[1].upper() == "AS", f"name every stage: {line}"
            stages.append(Stage(name=parts[2], base=parts[0]))
        else:
            assert stages, f"instruction before FROM: {line}"
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


STAGES = parse(DOCKERFILE)
BY_NAME = {s.name: s for s in STAGES}
RUNTIME = STAGES[-1]


def copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    """(from stage or None for the build context, sources, destination) of each COPY."""
    result = []
    for args in stage.all("COPY"):
        words = shlex.split(args)
        origin = None
        flags = [w for w in words if w.startswith("--")]
        for flag in flags:
            if flag.startswith("--from="):
                origin = flag.removeprefix("--from=")
        paths = [w for w in words if not w.startswith("--")]
        result.append((origin, paths[:-1], paths[-1]))
    return result


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
               for pattern in patterns for prefix in prefixes)


def ignore_patterns() -> list[str]:
    return [line.strip() for line in IGNORE_FILE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def context_sources() -> list[str]:
    return [src for stage in STAGES for origin, sources, _ in copies(stage) if origin is None for src in sources]


def test_every_stage_starts_from_python_311_slim_pinned_by_version() -> None:
    assert len(STAGES) >= 2, "multi-stage: build tools stay out of the runtime image"
    for stage in STAGES:
        image, _, tag = stage.base.partition(":")
        assert image == "python" and tag.startswith("3.11") and "slim" in tag, stage.base


def test_every_copied_source_exists_and_is_not_kept_out_of_the_context() -> None:
    patterns = ignore_patterns()
    for source in context_sources():
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not ignored(source, patterns), f"COPY {source}: excluded by {IGNORE_FILE.name}"
    for stage in STAGES:
        for origin, _, _ in copies(stage):
            assert origin is None or origin in BY_NAME, f"COPY --from={origin}: no such stage"


def test_the_build_stage_installs_the_project_from_pyproject() -> None:
    build = BY_NAME["build"]
    sources = [s for origin, srcs, _ in copies(build) if origin is None for s in srcs]
    assert "pyproject.toml" in sources
    runs = " ".join(build.all("RUN"))
    assert "pip install --no-deps ." in runs and "pyproject.toml" in runs


def test_the_runtime_stage_copies_every_deploy_module_the_entry_points_import() -> None:
    copied = {Path(s).name for origin, srcs, dest in copies(RUNTIME) if origin is None for s in srcs
              if s.startswith("deploy/")}
    needed = {"__init__.py"}
    queue = ["serve", "migrate", "healthcheck"]
    while queue:
        module = queue.pop()
        if f"{module}.py" in needed:
            continue
        needed.add(f"{module}.py")
        tree = ast.parse((DEPLOY / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deploy."):
                queue.append(node.module.removeprefix("deploy."))
    assert needed <= copied, f"the runtime image lacks {needed - copied}"


def test_the_runtime_stage_runs_as_a_numeric_non_root_user_with_a_health_check() -> None:
    (user,) = RUNTIME.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 10000 and (not gid or int(gid) != 0)
    (healthcheck,) = RUNTIME.all("HEALTHCHECK")
    assert json.loads(healthcheck[healthcheck.index("CMD") + 3:].strip()) == ["python", "-m", "deploy.healthcheck"]
    (cmd,) = RUNTIME.all("CMD")
    assert json.loads(cmd) == ["python", "-m", "deploy.serve"]


def test_the_runtime_has_time_zone_data_when_the_code_uses_zoneinfo() -> None:
    uses_zoneinfo = any("zoneinfo" in path.read_text() for package in ("services", "gateway")
                        for path in (ROOT / package).rglob("*.py"))
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    from_pypi = any(d.split(">")[0].split("=")[0].strip().lower() == "tzdata" for d in dependencies)
    from_debian = any("tzdata" in run for run in RUNTIME.all("RUN"))
    assert not uses_zoneinfo or from_pypi or from_debian, "ZoneInfo('Asia/Ho_Chi_Minh') would fail in the image"


def test_no_secret_is_baked_into_the_image() -> None:
    for stage in STAGES:
        for keyword in ("ENV", "ARG", "LABEL"):
            for args in stage.all(keyword):
                upper = args.upper()
                assert not any(w in upper for w in ("PASSWORD", "SECRET", "TOKEN", "DATABASE_URL")), args


@pytest.mark.parametrize("module", ["deploy.serve", "deploy.migrate", "deploy.healthcheck"])
def test_the_entry_point_modules_import(module: str) -> None:
    assert callable(importlib.import_module(module).main)


@pytest.mark.parametrize("name", list(SERVICES))
def test_the_service_table_matches_the_code(name: str) -> None:
    service = SERVICES[name]
    app = importlib.import_module(service.app_module)
    assert callable(app.create_app)
    assert service.migrations_dir().is_dir()
    settings = service.settings_type()
    assert settings.model_config["env_prefix"] == service.env_prefix
    assert settings.model_fields["port"].default == service.port


def test_the_installed_project_carries_every_module_and_migration(tmp_path: Path) -> None:
    """Build the wheel from exactly what the build stage copies, as `pip install --no-deps .` does there."""
    context = tmp_path / "src"
    for source in [s for o, srcs, _ in copies(BY_NAME["build"]) if o is None for s in srcs]:
        target = context / source
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((ROOT / source).read_bytes())
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
                             str(tmp_path / "dist"), str(context)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for service in SERVICES.values():
        module_file = service.app_module.replace(".", "/") + ".py"
        assert module_file in names, f"{module_file} missing from the image"
        settings_file = service.settings_class.partition(":")[0].replace(".", "/") + ".py"
        assert settings_file in names
        migrations = service.migrations_dir()
        for path in migrations.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                relative = path.relative_to(ROOT).as_posix()
                assert relative in names, f"{relative} missing from the image: migrations would not run"
    # The papers' fonts and templates (services/cases/documents_render.py): without them no PDF could be made.
    for path in [*(ROOT / "services/common/fonts").glob("*.ttf"), *(ROOT / "services/cases/templates/forms").iterdir()]:
        relative = path.relative_to(ROOT).as_posix()
        assert relative in names, f"{relative} missing from the image: no paper could be made"
