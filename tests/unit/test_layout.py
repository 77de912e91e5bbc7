"""The source root `operator/` must never shadow Python's standard `operator` module."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_stdlib_operator_imports_from_repo_root():
    probe = "import operator, sys; print(operator.__file__); print(operator.itemgetter(1)([0, 42]))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    module_file, value = result.stdout.split()
    assert not Path(module_file).resolve().is_relative_to(REPO)
    assert value == "42"


def test_stdlib_operator_in_this_process():
    import operator

    assert operator.itemgetter("a")({"a": 1}) == 1
    assert not Path(operator.__file__).resolve().is_relative_to(REPO)


def test_operator_source_root_is_not_a_package():
    source_root = REPO / "operator"
    assert not (source_root / "__init__.py").exists()
    assert [path.name for path in source_root.glob("*.py")] == []
    assert (source_root / "modelrollout" / "__init__.py").is_file()


def test_json_logs_are_one_object_per_line_with_the_object_context():
    import json
    import logging

    from modelrollout.logs import JsonFormatter

    record = logging.LogRecord(
        "modelrollout.handlers", logging.WARNING, __file__, 1, "reconcile failed: %s", ("409",), None
    )
    record.k8s_ref = {"namespace": "fraud", "name": "scorer", "uid": "u"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and entry["message"] == "reconcile failed: 409"
    assert (entry["namespace"], entry["name"], entry["logger"]) == ("fraud", "scorer", "modelrollout.handlers")


def test_modelrollout_version_is_pyprojects(capsys):
    import tomllib

    import pytest

    from modelrollout import cli

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"modelrollout {project['version']}"
