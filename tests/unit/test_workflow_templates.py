"""The safe template syntax: lookups only, types kept, missing references explained."""

from __future__ import annotations

import re

import pytest

from bot.workflows.templates import Ref, TemplateError, parse_ref, refs_in, render

CONTEXT = {
    "input": {"amount": 125, "invoice_id": "INV-7", "tags": ["a", "b"]},
    "steps": {"upload": {"result": {"webViewLink": "https://drive/x", "rows": [[1, 2]]}}},
    "run": {"id": "r1", "name": "invoice-processing", "version": 2},
}


def test_whole_value_keeps_its_type() -> None:
    assert render("{{ input.amount }}", CONTEXT) == 125
    assert render("{{input.tags}}", CONTEXT) == ["a", "b"]
    assert render("{{ steps.upload.result.rows[0][1] }}", CONTEXT) == 2
    assert render("{{ steps.upload.result.rows.0 }}", CONTEXT) == [1, 2]


def test_inside_text_and_nested_data() -> None:
    data = {
        "text": "Invoice {{ input.invoice_id }}: {{ steps.upload.result.webViewLink }}",
        "values": [["{{ input.invoice_id }}", "{{ input.amount }}", "{{ input.tags }}"]],
        "n": 3,
    }
    assert render(data, CONTEXT) == {
        "text": "Invoice INV-7: https://drive/x",
        "values": [["INV-7", 125, ["a", "b"]]],
        "n": 3,
    }
    assert render("tags={{ input.tags }}", CONTEXT) == 'tags=["a", "b"]'


def test_default_applies_only_when_missing() -> None:
    assert render('{{ input.channel | default("#ops") }}', CONTEXT) == "#ops"
    assert render("{{ input.amount | default(0) }}", CONTEXT) == 125


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ input.missing }}", "input has no key 'missing' (keys: amount, invoice_id, tags)"),
        ("{{ steps.upload.result.id }}", "steps.upload.result has no key 'id'"),
        ("{{ steps.other.result }}", "steps has no key 'other'"),
        ("{{ input.tags[5] }}", "input.tags has 2 item(s), no index 5"),
        ("{{ input.amount.x }}", "input.amount is 125, not an object or list"),
    ],
)
def test_missing_reference_is_a_clear_error(template: str, expected: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(expected)):
        render(template, CONTEXT)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('id')",
        "input.amount + 1",
        "config.secret",
        "input.amount()",
        "steps.upload.status",
        "input.x | upper",
        "input.x | default(nope)",
    ],
)
def test_anything_but_lookups_is_refused(expression: str) -> None:
    with pytest.raises(TemplateError):
        parse_ref(expression)


def test_dunder_keys_are_plain_dict_keys() -> None:
    # No attribute access: "__class__" is looked up as a key, and is simply missing.
    with pytest.raises(TemplateError, match="no key"):
        render("{{ input.__class__ }}", CONTEXT)


def test_refs_in_reports_locations_and_syntax_errors() -> None:
    found = list(
        refs_in({"a": ["x {{ input.id }}", {"b": "{{ steps.s.result.k }}"}], "c": "{{ oops"})
    )
    locations = [where for where, _ in found]
    assert locations == ["a[0]", "a[1].b", "c"]
    assert isinstance(found[0][1], Ref) and found[0][1].root == "input"
    assert isinstance(found[1][1], Ref) and found[1][1].step == "s"
    assert isinstance(found[2][1], TemplateError)


def test_a_string_opening_and_closing_with_tags_keeps_its_text_between() -> None:
    context = {"input": {"priority": "urgent", "title": "Login fails"}, "steps": {}, "run": {}}
    text = "{{ input.priority }} bug '{{ input.title }}'{{ input.priority }}"
    assert render(text, context) == "urgent bug 'Login fails'urgent"
    assert render("{{ input.title }}", context) == "Login fails"
