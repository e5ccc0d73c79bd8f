"""The example content shipped with the sandbox (package data under bot/sandbox/examples/, so
an installed wheel has it too): actions for the JSON editor (examples/actions/), the example
workflows (examples/workflows/) and sample inputs for their start form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent / "examples"
EXAMPLE_ACTIONS = EXAMPLES / "actions"
EXAMPLE_WORKFLOWS = EXAMPLES / "workflows"
SAMPLE_INPUTS: dict[str, dict[str, str]] = {
    "invoice-processing": {"invoice_id": "INV-001", "amount": "1250.00",
                           "date": "2026-01-15", "content": "Invoice PDF"},
    "bug-report": {"title": "Login fails", "description": "500 on submit", "priority": "urgent"},
    "meeting-request": {"topic": "Quarterly review", "date": "2026-02-01",
                        "attendees": "alice, bob", "channel": "#operations"},
}  # fmt: skip


def load_examples(folder: Path = EXAMPLE_ACTIONS) -> list[dict[str, Any]]:
    if not folder.is_dir():
        return []
    return [{"name": path.stem, "action": json.loads(path.read_text("utf-8"))}
            for path in sorted(folder.glob("*.json"))]  # fmt: skip
