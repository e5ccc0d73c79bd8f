"""The CLI's (and /ops's) text for a rollback outcome: readable lines, not a JSON dump."""

from __future__ import annotations

from bot.render_workflows import view_rollback


def test_rollback_outcome_lines() -> None:
    outcome = {
        "rolled_back": ["s3", "s1"],
        "not_rolled_back": ["s2"],
        "irreversible": [{"step": "s0", "reason": "marked compensate: none"}],
        "errors": {"s2": "echo compensation failed on purpose"},
    }
    assert view_rollback(outcome).splitlines() == [
        "rolled back      s3, s1",
        "not rolled back  s2",
        "irreversible     s0 (marked compensate: none)",
        "errors           s2: echo compensation failed on purpose",
    ]


def test_an_empty_outcome_shows_dashes() -> None:
    empty = {"rolled_back": [], "not_rolled_back": [], "irreversible": [], "errors": {}}
    assert [line.split()[-1] for line in view_rollback(empty).splitlines()] == ["-"] * 4
