"""Serializers of the schema API: shapes only. Whether a field, mapping or route rule is
acceptable is decided by ``profiles.schema.checks`` (its problems become the 400 answer), so these
check little more than JSON types and column lengths."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from profiles.models import FIELD_NAME_MAX, Field, Mapping, RouteRule, SchemaVersion
from profiles.schema.checks import Problem

DB_INT_MAX = 2_147_483_647  # PositiveIntegerField / IntegerField columns
EVALUATE_DEFAULT = 20
EVALUATE_MAX = 200


# --------------------------------------------------------------------------- refusals


def refusal_body(problems: list[Problem], *, code: str | None = None,
                 message: str | None = None) -> dict[str, Any]:
    """The API's error shape for a refused schema edit: the first problem's code and message
    (and, for an expression, its line and column), ``errors`` per attribute, every problem."""
    first = problems[0]
    errors: dict[str, list[dict[str, Any]]] = {}
    for problem in problems:
        errors.setdefault(problem.attr or "non_field_errors", []).append(problem.as_dict())
    body: dict[str, Any] = {"code": code or first.code, "message": message or first.message}
    if first.line is not None:
        body["line"], body["column"] = first.line, first.column
    body["errors"] = errors
    body["problems"] = [p.as_dict() for p in problems]
    return body


def count_changes(diff: dict[str, Any]) -> int:
    """How many entries publishing would add, remove or change (``diff_schema``'s answer)."""
    return sum(len(part.get(kind, ())) for part in diff.values() if isinstance(part, dict)
               for kind in ("added", "removed", "changed"))


class ProblemSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    kind = serializers.CharField(required=False, help_text="field, mapping or route_rule")
    ref = serializers.CharField(required=False,
                                help_text="The field's name, or the mapping's / rule's id.")
    attr = serializers.CharField(required=False)
    line = serializers.IntegerField(required=False)
    column = serializers.IntegerField(required=False)


class RefusalSerializer(serializers.Serializer):
    """A refused edit or publish (400)."""

    code = serializers.CharField()
    message = serializers.CharField()
    line = serializers.IntegerField(required=False, help_text="Where an expression failed.")
    column = serializers.IntegerField(required=False)
    # DRF's metaclass takes declared fields out of the class: this does not replace
    # Serializer.errors, which the stubs see.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=ProblemSerializer(many=True))
    problems = ProblemSerializer(many=True)


# --------------------------------------------------------------------------- fields


class FieldMappingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Mapping
        fields = ["id", "stream", "expression", "guard"]
        read_only_fields = fields


class FieldSerializer(serializers.ModelSerializer):
    mappings = FieldMappingSerializer(many=True, read_only=True)

    class Meta:
        model = Field
        fields = [
            "id", "name", "description", "type", "merge_operator", "capacity", "keep_days",
            "is_identifier", "identifier_rank", "identifier_capacity", "is_pii", "mappings",
            "created_at", "updated_at",
        ]
        read_only_fields = fields


# What a PUT leaves out is reset to these (a PATCH keeps the current value).
FIELD_DEFAULTS: dict[str, Any] = {
    "description": "", "capacity": None, "keep_days": None, "is_identifier": False,
    "identifier_rank": None, "identifier_capacity": None, "is_pii": False,
}


class FieldWriteSerializer(serializers.Serializer):
    """A field to create or change; its rules (name, type, operator, identifier settings) are
    checked by ``profiles.schema.drafts.save_field``."""

    name = serializers.CharField(max_length=FIELD_NAME_MAX, trim_whitespace=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    type = serializers.CharField(required=False, default="string",
                                 help_text="string, int, number, bool, date, []string, "
                                 "map[string]int, map[string]number, map[string]string, "
                                 "map[string]date")
    merge_operator = serializers.CharField(required=False, default="latest")
    capacity = serializers.IntegerField(required=False, allow_null=True, max_value=DB_INT_MAX)
    keep_days = serializers.IntegerField(required=False, allow_null=True, max_value=DB_INT_MAX)
    is_identifier = serializers.BooleanField(required=False)
    identifier_rank = serializers.IntegerField(required=False, allow_null=True,
                                               max_value=32767)
    identifier_capacity = serializers.IntegerField(required=False, allow_null=True,
                                                   max_value=DB_INT_MAX)
    is_pii = serializers.BooleanField(required=False)


# --------------------------------------------------------------------------- mappings


class MappingSerializer(serializers.ModelSerializer):
    field = serializers.CharField(source="field.name", read_only=True)
    field_id = serializers.IntegerField(read_only=True)
    field_type = serializers.CharField(source="field.type", read_only=True)

    class Meta:
        model = Mapping
        fields = ["id", "field", "field_id", "field_type", "stream", "expression", "guard",
                  "created_at", "updated_at"]
        read_only_fields = fields


class MappingWriteSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The field's name (or its id).")
    stream = serializers.CharField(max_length=200, trim_whitespace=False)
    expression = serializers.CharField(allow_blank=True, trim_whitespace=False,
                                       help_text="e.g. email(origin.email)")
    guard = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                  help_text="Optional: the mapping applies only when true.")


# --------------------------------------------------------------------------- route rules


class RouteRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = RouteRule
        fields = ["id", "name", "input_stream", "expression", "output_stream", "priority",
                  "active", "created_at", "updated_at"]
        read_only_fields = fields


ROUTE_DEFAULTS: dict[str, Any] = {"name": "", "priority": 0, "active": True}


class RouteRuleWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    input_stream = serializers.CharField(max_length=200, trim_whitespace=False)
    expression = serializers.CharField(allow_blank=True, trim_whitespace=False,
                                       help_text='e.g. contains(`_url`, "localhost")')
    output_stream = serializers.CharField(max_length=200, trim_whitespace=False)
    priority = serializers.IntegerField(required=False, min_value=-1_000_000,
                                        max_value=1_000_000, help_text="Higher runs first.")
    active = serializers.BooleanField(required=False)


# --------------------------------------------------------------------------- the draft


class ValidationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    problems = ProblemSerializer(many=True)


class DiffPartSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.DictField())
    removed = serializers.ListField(child=serializers.DictField())
    changed = serializers.ListField(
        child=serializers.DictField(),
        help_text="{before, after, changes: {attribute: [before, after]}}")


class DiffSerializer(serializers.Serializer):
    live_version = serializers.IntegerField(allow_null=True)
    has_changes = serializers.BooleanField()
    changes = serializers.IntegerField(help_text="Entries added, removed or changed.")
    # not Serializer.fields: DRF's metaclass takes declared fields out of the class
    fields = DiffPartSerializer()  # type: ignore[assignment]
    mappings = DiffPartSerializer()
    route_rules = DiffPartSerializer()


class PublishSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    rebuild = serializers.BooleanField(
        required=False, default=False,
        help_text="Also recompute every profile from the raw store with the new version.")


class RebuildStatusSerializer(serializers.Serializer):
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    finished = serializers.BooleanField()
    events_total = serializers.IntegerField(help_text="Raw events queued again.")
    events_done = serializers.IntegerField()
    progress = serializers.FloatField(help_text="0 to 1.")
    schema_version = serializers.IntegerField(allow_null=True)


class RebuildAnswerSerializer(serializers.Serializer):
    rebuild = RebuildStatusSerializer(allow_null=True, help_text="The latest rebuild, if any.")


def rebuild_data(status: Any) -> dict[str, Any] | None:
    """``profiles.processing.rebuild.rebuild_status`` as the serializer's input."""
    if status is None:
        return None
    return {**status.as_dict(), "finished": status.finished}


# --------------------------------------------------------------------------- versions


class SchemaVersionSerializer(serializers.ModelSerializer):
    published_by = serializers.SerializerMethodField()
    live = serializers.SerializerMethodField(help_text="The version processing uses now.")
    fields_count = serializers.SerializerMethodField()
    mappings_count = serializers.SerializerMethodField()
    route_rules_count = serializers.SerializerMethodField()

    class Meta:
        model = SchemaVersion
        fields = ["number", "note", "reverted_from", "published_by", "published_at", "live",
                  "fields_count", "mappings_count", "route_rules_count"]
        read_only_fields = fields

    def get_published_by(self, version: SchemaVersion) -> str | None:
        user = version.published_by
        return user.get_username() if user is not None else None

    def get_live(self, version: SchemaVersion) -> bool:
        return version.number == self.context.get("live_number")

    def get_fields_count(self, version: SchemaVersion) -> int:
        return len(version.snapshot.get("fields", []))

    def get_mappings_count(self, version: SchemaVersion) -> int:
        return len(version.snapshot.get("mappings", []))

    def get_route_rules_count(self, version: SchemaVersion) -> int:
        return len(version.snapshot.get("route_rules", []))


class SchemaVersionDetailSerializer(SchemaVersionSerializer):
    class Meta(SchemaVersionSerializer.Meta):
        fields = [*SchemaVersionSerializer.Meta.fields, "snapshot"]
        read_only_fields = fields


class RevertSerializer(serializers.Serializer):
    publish = serializers.BooleanField(
        required=False, default=True,
        help_text="false: only make the draft that version again, without publishing.")


class DraftRestoredSerializer(serializers.Serializer):
    draft_restored_from = serializers.IntegerField()
    diff = DiffSerializer()


# --------------------------------------------------------------------------- dry run


class EvaluateSerializer(serializers.Serializer):
    """Either a saved mapping (``mapping``), or an expression to try on a stream."""

    mapping = serializers.IntegerField(required=False, help_text="A mapping's id.")
    stream = serializers.CharField(max_length=200, required=False, trim_whitespace=False)
    expression = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    guard = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    field = serializers.CharField(required=False, allow_blank=True,
                                  help_text="A field (name or id): values are converted to "
                                  "its type, as processing would.")
    limit = serializers.IntegerField(required=False, default=EVALUATE_DEFAULT, min_value=1,
                                     max_value=EVALUATE_MAX)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("mapping") is None and (
                attrs.get("stream") is None or attrs.get("expression") is None):
            raise serializers.ValidationError(
                "Give a mapping's id, or a stream and an expression.")
        return attrs


class EvaluatedEventSerializer(serializers.Serializer):
    raw_event_id = serializers.IntegerField()
    event_at = serializers.DateTimeField()
    applies = serializers.BooleanField(help_text="false: the guard was not true.")
    value = serializers.JSONField(allow_null=True, help_text="What the field would receive.")
    error = serializers.CharField(allow_null=True)


class EvaluationSerializer(serializers.Serializer):
    stream = serializers.CharField()
    expression = serializers.CharField()
    guard = serializers.CharField(allow_blank=True)
    field = serializers.CharField(allow_null=True)
    field_type = serializers.CharField(allow_null=True)
    summary = serializers.DictField(child=serializers.IntegerField(),
                                    help_text="events, values, empty, skipped, errors")
    results = EvaluatedEventSerializer(many=True)


def evaluation_summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Counts of a dry run: values produced, no value, guard false, errors."""
    return {
        "events": len(rows),
        "values": sum(1 for r in rows if r["applies"] and not r["error"]
                      and r["value"] is not None),
        "empty": sum(1 for r in rows if r["applies"] and not r["error"] and r["value"] is None),
        "skipped": sum(1 for r in rows if not r["applies"]),
        "errors": sum(1 for r in rows if r["error"]),
    }
