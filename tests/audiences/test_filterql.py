"""The text form parses to the rule JSON and prints back."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from audiences.filterql import FilterSyntaxError, parse_filter, to_text
from audiences.rules import RuleSchema
from tests.audiences.test_compiler_agreement import rules

SCHEMA = RuleSchema(fields={"tier": "string", "and": "int", "a b": "[]string", "d": "date"},
                    attributes={"90_day_revenue": "number", "top": "string"})


@pytest.mark.parametrize("text", [
    'FILTER AND(taxonomy = "cuisine", EXISTS email)',
    'FILTER AND(loyalty_tier = "Gold", preferred_activities CONTAINS "Parasailing")',
    "FILTER AND(INCLUDE added_to_cart_7d, NOT INCLUDE purchased_7d)",
])
def test_seed_texts_round_trip(text: str) -> None:
    assert to_text(parse_filter(text)) == text


def test_syntax_error_gives_line_and_column() -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter('FILTER AND(\n  tier = "x",\n  visits > )')
    assert (caught.value.line, caught.value.column) == (3, 12)


def _no_events(rule: Any) -> bool:
    return "event" not in repr(rule)


@settings(max_examples=200, deadline=None)
@given(rules(SCHEMA).filter(_no_events))
def test_print_parse_print_is_stable(rule: dict[str, Any]) -> None:
    text = to_text(rule)
    assert to_text(parse_filter(text)) == text
