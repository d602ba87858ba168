"""The schema: draft edits refused with reasons (and positions), validation, diff, publish,
revert, compiled versions, the mapping dry run and the Lytics use-case schema."""

from __future__ import annotations

import pytest

from profiles.models import Field, Mapping, RouteRule, SchemaVersion
from profiles.schema.checks import SchemaValidationError
from profiles.schema.compiled import live_schema
from profiles.schema.drafts import preview_mapping, save_field, save_mapping, save_route_rule
from profiles.schema.lytics import install_lytics_schema
from profiles.schema.versions import (
    diff_schema,
    diff_snapshots,
    live_version,
    publish,
    revert,
    validate_draft,
)
from tests.profiles.processing import send

pytestmark = pytest.mark.django_db


def codes(exc: pytest.ExceptionInfo[SchemaValidationError]) -> set[str]:
    return {p.code for p in exc.value.problems}


@pytest.fixture
def tier(account):
    return save_field(account, name="tier", type="string", merge_operator="latest")


def test_a_mapping_with_a_syntax_error_is_refused_with_its_position(account, tier):
    with pytest.raises(SchemaValidationError) as exc:
        save_mapping(account, field=tier, stream="web", expression="tolower(tier")
    [problem] = exc.value.problems
    assert problem.code == "invalid_expression"
    assert (problem.line, problem.column) == (1, 13)
    assert problem.attr == "expression"
    assert Mapping.objects.count() == 0


def test_an_unknown_function_is_refused_with_its_position(account, tier):
    with pytest.raises(SchemaValidationError) as exc:
        save_mapping(account, field=tier, stream="web", expression="trim(lowercase(x))")
    [problem] = exc.value.problems
    assert "unknown function 'lowercase'" in problem.message
    assert (problem.line, problem.column) == (1, 6)


def test_a_bad_guard_is_refused(account, tier):
    with pytest.raises(SchemaValidationError) as exc:
        save_mapping(account, field=tier, stream="web", expression="tier",
                     guard="exists(tier) AND")
    assert [p.attr for p in exc.value.problems] == ["guard"]


def test_a_mapping_to_a_field_of_another_type_is_refused(account):
    visits = save_field(account, name="visits", type="int", merge_operator="sum")
    with pytest.raises(SchemaValidationError) as exc:
        save_mapping(account, field=visits, stream="web", expression="email(address)")
    assert codes(exc) == {"type_mismatch"}
    assert "toint()" in exc.value.problems[0].message
    save_mapping(account, field=visits, stream="web", expression="toint(visits)")
    save_mapping(account, field=visits, stream="web", expression="visits")  # any


def test_changing_a_fields_type_under_its_mappings_is_refused(account, tier):
    save_mapping(account, field=tier, stream="web", expression="tolower(tier)")
    with pytest.raises(SchemaValidationError) as exc:
        save_field(account, instance=tier, type="int", merge_operator="latest")
    assert codes(exc) == {"type_mismatch"}
    tier.refresh_from_db()
    assert tier.type == "string"


@pytest.mark.parametrize(("attrs", "code"), [
    ({"name": "1st"}, "invalid_name"),
    ({"name": "ok", "type": "text"}, "invalid_type"),
    ({"name": "ok", "type": "string", "merge_operator": "sum"}, "merge_operator_does_not_fit"),
    ({"name": "ok", "is_identifier": True, "identifier_rank": 0}, "identifier_rank"),
    ({"name": "ok", "is_identifier": True, "identifier_rank": 1, "identifier_capacity": 51},
     "identifier_capacity"),
    ({"name": "ok", "type": "map[string]int", "merge_operator": "mapsum",
      "is_identifier": True, "identifier_rank": 1}, "identifier_type"),
])
def test_insane_fields_are_refused(account, attrs, code):
    attrs = {"type": "string", "merge_operator": "latest", **attrs}
    with pytest.raises(SchemaValidationError) as exc:
        save_field(account, **attrs)
    assert code in codes(exc)
    assert Field.objects.count() == 0


def test_a_duplicate_field_name_is_refused(account, tier):
    with pytest.raises(SchemaValidationError) as exc:
        save_field(account, name="tier", type="string", merge_operator="latest")
    assert codes(exc) == {"duplicate_name"}


def test_a_route_rule_loop_is_refused(account):
    save_route_rule(account, input_stream="a", expression="true", output_stream="b")
    save_route_rule(account, input_stream="b", expression="x = 1", output_stream="c")
    with pytest.raises(SchemaValidationError) as exc:
        save_route_rule(account, input_stream="c", expression="true", output_stream="a")
    assert codes(exc) == {"route_loop"}
    assert "a → b → c → a" in str(exc.value)
    with pytest.raises(SchemaValidationError) as exc:
        save_route_rule(account, input_stream="a", expression="true", output_stream="a")
    assert codes(exc) == {"route_loop"}
    # an inactive rule closes no loop
    save_route_rule(account, input_stream="c", expression="true", output_stream="a",
                    active=False)
    assert RouteRule.objects.count() == 3


def test_publishing_a_draft_that_fails_validation_is_refused_and_nothing_changes(account, tier):
    save_mapping(account, field=tier, stream="web", expression="tier")
    first = publish(account)
    # a draft broken behind the services' back (a row edited directly)
    Mapping.objects.filter(account=account).update(expression="tier +")
    with pytest.raises(SchemaValidationError) as exc:
        publish(account)
    assert codes(exc) == {"invalid_expression"}
    assert list(SchemaVersion.objects.values_list("number", flat=True)) == [first.number]
    assert live_version(account) == first
    assert validate_draft(account)[0].ref == str(Mapping.objects.get().pk)


def test_publishing_nothing_new_is_refused(account, tier):
    publish(account)
    with pytest.raises(SchemaValidationError) as exc:
        publish(account)
    assert codes(exc) == {"no_changes"}


def test_publish_snapshots_the_draft_and_later_edits_do_not_touch_it(account, tier,
                                                                     django_user_model):
    user = django_user_model.objects.create_user("publisher")
    save_mapping(account, field=tier, stream="web", expression="tier")
    v1 = publish(account, user=user, note="first")
    assert (v1.number, v1.published_by, v1.note) == (1, user, "first")
    assert v1.snapshot["mappings"] == [{"field": "tier", "stream": "web", "expression": "tier",
                                        "guard": ""}]
    save_field(account, instance=tier, description="changed")
    v1.refresh_from_db()
    assert v1.snapshot["fields"][0]["description"] == ""


def test_diff_lists_added_removed_and_changed(account, tier):
    mapping = save_mapping(account, field=tier, stream="web", expression="tier")
    save_route_rule(account, input_stream="web", expression='contains(`_url`, "local")',
                    output_stream="app_divert")
    publish(account)
    assert diff_schema(account)["has_changes"] is False
    save_field(account, instance=tier, keep_days=30)
    save_mapping(account, instance=mapping, field=tier, stream="web",
                 expression="tolower(tier)")
    save_field(account, name="score", type="number", merge_operator="max")
    RouteRule.objects.filter(account=account).delete()
    diff = diff_schema(account)
    assert diff["has_changes"] and diff["live_version"] == 1
    assert [f["name"] for f in diff["fields"]["added"]] == ["score"]
    [changed] = diff["fields"]["changed"]
    assert changed["changes"] == {"keep_days": [None, 30]}
    assert diff["mappings"]["changed"][0]["changes"] == {"expression": ["tier",
                                                                        "tolower(tier)"]}
    assert len(diff["route_rules"]["removed"]) == 1


def test_revert_publishes_the_old_version_again_and_makes_it_the_draft(account, tier):
    save_mapping(account, field=tier, stream="web", expression="tier")
    publish(account)
    save_field(account, name="score", type="number", merge_operator="max")
    Mapping.objects.filter(account=account).delete()
    publish(account)
    tier_id = tier.pk
    v3 = revert(account, 1)
    assert v3 is not None and (v3.number, v3.reverted_from) == (3, 1)
    assert live_version(account) == v3
    assert diff_snapshots(SchemaVersion.objects.get(number=1).snapshot,
                          v3.snapshot)["has_changes"] is False
    assert list(Field.objects.values_list("name", flat=True)) == ["tier"]
    assert Field.objects.get().pk == tier_id  # kept by name
    assert Mapping.objects.get().expression == "tier"
    # reverting the draft alone publishes nothing
    assert revert(account, 2, publish_now=False) is None
    assert live_version(account) == v3
    assert diff_schema(account)["has_changes"] is True


def test_each_version_compiles_once_and_processing_uses_the_live_one(account, tier):
    save_mapping(account, field=tier, stream="web", expression="tier")
    v1 = publish(account)
    compiled = live_schema(account)
    assert compiled is not None and compiled.version_id == v1.pk
    assert live_schema(account) is compiled
    save_field(account, name="score", type="number", merge_operator="max")
    v2 = publish(account)
    assert live_schema(account).version_id == v2.pk
    assert "score" in live_schema(account).fields


def test_preview_runs_a_mapping_over_the_latest_events_without_storing(account, tier):
    send(account, {"tier": "Gold"}, {"tier": 5}, {"other": 1}, stream="crm")
    rows = preview_mapping(account, stream="crm", expression="tolower(tier)",
                           guard="exists(tier)", field=tier)
    assert [(r["value"], r["applies"], bool(r["error"])) for r in rows] == [
        (None, False, False), (None, True, True), ("gold", True, False)]
    with pytest.raises(SchemaValidationError):
        preview_mapping(account, stream="crm", expression="tolower(")


def test_the_lytics_schema_installs_once(account):
    version = install_lytics_schema(account)
    assert version is not None and version.number == 1
    fields = {f.name: f for f in Field.objects.filter(account=account)}
    assert (fields["email"].identifier_rank, fields["email"].identifier_capacity) == (1, 1)
    assert (fields["_uid"].identifier_rank, fields["_uid"].identifier_capacity) == (2, 50)
    assert (fields["user_id"].identifier_rank, fields["user_id"].identifier_capacity) == (1, 1)
    # Segment's alias: userId and previousId are mapped, so the two ids meet in one event
    assert set(Mapping.objects.filter(account=account, stream="default", field__name__in=[
        "user_id", "_uid"]).values_list("field__name", "expression")) == {
        ("user_id", "userId"), ("_uid", "oneof(`_uid`, anonymousId)"), ("_uid", "previousId")}
    assert fields["preferred_activities"].merge_operator == "merge"
    assert Mapping.objects.filter(account=account, stream="crm_users").count() == 3
    assert install_lytics_schema(account) == version
    assert SchemaVersion.objects.count() == 1
