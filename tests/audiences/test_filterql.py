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
    "FILTER AND(EVENT added_to_cart WITHIN 7, NOT EVENT purchased WITHIN 7)",
    'FILTER EVENT added_to_cart WHERE(price > 10, sku:string = "A1", NOT EXISTS coupon) '
    "MIN 2 WITHIN 7",
    "FILTER EVENT `Trip Booked` MIN 3",
])
def test_seed_texts_round_trip(text: str) -> None:
    assert to_text(parse_filter(text)) == text


def test_syntax_error_gives_line_and_column() -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter('FILTER AND(\n  tier = "x",\n  visits > )')
    assert (caught.value.line, caught.value.column) == (3, 12)


def test_event_text_parses_to_the_event_json() -> None:
    assert parse_filter('EVENT added_to_cart WHERE(price > 10, sku:string = "A1") MIN 2 '
                        "WITHIN 7 DAYS") == {
        "event": "added_to_cart",
        "where": [{"property": "price", "op": ">", "value": 10},
                  {"property": "sku", "op": "=", "value": "A1", "type": "string"}],
        "min_count": 2, "within_days": 7}
    assert parse_filter("NOT EVENT purchased WITHIN 7") == {
        "not": {"event": "purchased", "within_days": 7}}


def test_event_syntax_error_gives_its_position() -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter("EVENT added_to_cart WITHIN seven")
    assert (caught.value.line, caught.value.column) == (1, 28)


@settings(max_examples=200, deadline=None)
@given(rules(SCHEMA))
def test_print_parse_print_is_stable(rule: dict[str, Any]) -> None:
    text = to_text(rule)
    assert to_text(parse_filter(text)) == text
    assert parse_filter(text) == parse_filter(to_text(parse_filter(text)))
