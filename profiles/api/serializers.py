"""Shapes of the profile API (for the OpenAPI schema); the documents themselves are built, and
masked, by profiles.selectors."""

from __future__ import annotations

from rest_framework import serializers

MASK_NOTE = ("Values of fields marked PII are masked (j***@example.com, +1-***-**39, A***) "
             "unless the token's roles include pii.view.")


class HealthSerializer(serializers.Serializer):
    conflicts = serializers.IntegerField(
        help_text="Merges refused because they would break an identifier's capacity or the "
                  "identifier limit (counted on both profiles).")
    compactions = serializers.IntegerField(
        help_text="Oldest identifier values dropped from lookups to stay within capacity.")
    identifier_count = serializers.IntegerField()
    identifier_limit = serializers.IntegerField(help_text="The account's identifiers per "
                                                          "profile.")
    event_count = serializers.IntegerField()
    size = serializers.IntegerField(help_text="Bytes of merged state.")


class ConsentSerializer(serializers.Serializer):
    purpose = serializers.CharField()
    granted = serializers.BooleanField()
    at = serializers.DateTimeField(help_text="Time of the event that made the choice.")


class ProfileAudienceSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    api_accessible = serializers.BooleanField()
    since = serializers.DateTimeField(allow_null=True, help_text="When it joined.")


class ProfileAssignmentSerializer(serializers.Serializer):
    experience = serializers.CharField(help_text="The experience key.")
    experience_uid = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    variant = serializers.CharField(help_text="The variant key it was given.")
    variant_uid = serializers.CharField()
    phase = serializers.IntegerField(help_text="The phase it was assigned in.")
    current_phase = serializers.BooleanField()
    assigned_at = serializers.DateTimeField()


class ProfileSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    # DRF's metaclass takes declared fields out of the class: this does not replace
    # Serializer.fields, which the stubs see.
    fields = serializers.DictField(  # type: ignore[assignment]
        help_text=f"Merged field values. {MASK_NOTE}")
    identifiers = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text=f"Active identifier values by field, most recently seen first. {MASK_NOTE}")
    audiences = ProfileAudienceSerializer(
        many=True, help_text="The audiences the profile is in now: the API-accessible ones, "
        "or every one for a reader with audiences.view.")
    experiences = ProfileAssignmentSerializer(
        many=True, help_text="Its experience assignments (its own, merged profiles' and its "
        "identifiers' as visitor keys), one per experience, the latest first.")
    updated_at = serializers.DateTimeField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    health = HealthSerializer()
    merged_profile_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Profiles merged into this one; their ids resolve to it.")
    pii_masked = serializers.BooleanField(help_text="Whether PII fields are masked here.")
    calculated_attributes = serializers.DictField(
        help_text="Values of the active calculated attributes, by name (none when no event "
                  "matched in the window).")
    consents = ConsentSerializer(many=True, help_text="Consent choices, by purpose.")


class ProfileSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    identifiers = serializers.DictField(child=serializers.ListField(
        child=serializers.CharField()), help_text=MASK_NOTE)
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    event_count = serializers.IntegerField()
    identifier_count = serializers.IntegerField()
    conflicts = serializers.IntegerField()


class ProfileEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    raw_event_id = serializers.IntegerField()
    stream = serializers.CharField()
    event = serializers.CharField(help_text="The event name, or the message type.")
    at = serializers.DateTimeField()
    properties = serializers.DictField(help_text=f"The values it mapped to fields. {MASK_NOTE}")


class RawEventRefSerializer(serializers.Serializer):
    raw_event_id = serializers.IntegerField()
    stream = serializers.CharField(required=False)
    type = serializers.CharField(required=False)
    event = serializers.CharField(required=False)
    event_at = serializers.DateTimeField(required=False)
    received_at = serializers.DateTimeField(required=False)


class LinkedIdentifierSerializer(serializers.Serializer):
    field = serializers.CharField()
    value = serializers.CharField(help_text=MASK_NOTE)
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    active = serializers.BooleanField(help_text="False: compacted, no longer resolves.")
    first_event = RawEventRefSerializer(allow_null=True,
                                        help_text="The event it first came in with.")


class IdentityEntrySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["merge", "conflict", "compaction"])
    at = serializers.DateTimeField()
    profile_id = serializers.IntegerField(help_text="The survivor (merge) or the profile "
                                                    "concerned.")
    other_profile_id = serializers.IntegerField(
        allow_null=True, help_text="The merged-away or conflicting profile.")
    field = serializers.CharField()
    value = serializers.CharField(help_text=f"The identifier involved. {MASK_NOTE}")
    reason = serializers.CharField()
    raw_event_id = serializers.IntegerField(allow_null=True)
    event = RawEventRefSerializer(allow_null=True, help_text="The event that caused it.")


class IdentitySerializer(serializers.Serializer):
    profile_id = serializers.IntegerField()
    merged_profile_ids = serializers.ListField(child=serializers.IntegerField())
    identifiers = LinkedIdentifierSerializer(many=True)
    log = IdentityEntrySerializer(many=True, help_text="Newest first.")
    log_more = serializers.BooleanField(help_text="More entries than ``limit`` exist.")



class ProfileWriteSerializer(serializers.Serializer):
    attributes = serializers.DictField(help_text="Field names of the live schema and values.")


class ProfileWriteResultSerializer(serializers.Serializer):
    profile_id = serializers.IntegerField()
    message_id = serializers.CharField(help_text="The event's message id on the api stream.")
    stream = serializers.CharField()
