"""The example content shipped with the sandbox: packaged, loaded whole, and covering the
action log (log_action)."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import yaml

from bot.actions import parse_actions
from bot.sandbox import snapshot
from bot.sandbox.content import EXAMPLE_ACTIONS, EXAMPLE_WORKFLOWS, EXAMPLES, load_examples
from bot.workflows.loader import load_path

ROOT = Path(__file__).resolve().parents[2]


def test_every_example_file_is_package_data() -> None:
    """A wheel holds only what [tool.setuptools.package-data] names: every example must match."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["bot.sandbox"]
    package = EXAMPLES.parent
    files = [p.relative_to(package).as_posix() for p in EXAMPLES.rglob("*") if p.is_file()]
    assert len(files) >= 9
    missed = [f for f in files if not any(fnmatch(f, pattern) for pattern in patterns)]
    assert missed == []


def test_every_example_workflow_description_is_loaded_whole() -> None:
    """An unquoted ' #bugs' starts a YAML comment: the description must come back in full."""
    workflows = load_path(EXAMPLE_WORKFLOWS)
    assert set(workflows) == {"invoice-processing", "bug-report", "meeting-request"}
    for path in sorted(EXAMPLE_WORKFLOWS.glob("*.yml")):
        line = re.search(r"^description:\s*(.+)$", path.read_text("utf-8"), re.M)
        assert line is not None, path
        written = line.group(1).strip().strip("\"'")
        name = yaml.safe_load(path.read_text("utf-8"))["name"]
        assert workflows[name].description == written, path.name
    assert "#bugs" in workflows["bug-report"].description
    assert "#finance" in workflows["invoice-processing"].description


def test_the_examples_write_the_action_log() -> None:
    actions = [a for ex in load_examples(EXAMPLE_ACTIONS) for a in parse_actions(ex["action"])]
    assert "log_action" in {a.type for a in actions}
    steps = [s for wf in load_path(EXAMPLE_WORKFLOWS).values() for s in wf.steps]
    assert "log_action" in {s.action.type for s in steps}


def test_sheets_panel_shows_every_tab_with_rows_log_first() -> None:
    book = {
        "properties": {"title": "book"},
        "sheets": [{"title": "Sheet1"}, {"title": "Bugs"}, {"title": "Actions"}],
        "grids": {"Sheet1": [], "Bugs": [["r1", "x"]], "Actions": [["time"], ["t", "a"]],
                  "Invoices": [["INV-1"]]},
    }  # fmt: skip
    shown = snapshot.sheets({"spreadsheets": {snapshot.SANDBOX_SPREADSHEET_ID: book}})
    assert [s["title"] for s in shown["sheets"]] == ["Actions", "Bugs", "Invoices"]
    assert shown["sheets"][0]["total"] == 2
