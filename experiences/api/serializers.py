"""Shapes of the experiences management API. Input serializers check shapes only; what an
experience may be (keys, weights, audiences, goals, transitions) is ``experiences.lifecycle``'s
to decide, so the API and the admin refuse the same things with the same codes."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from audiences.models import Audience
from cdp_site.api.serializers import ErrorSerializer  # noqa: F401 (re-exported: one component)
from experiences.models import Experience, Goal, Phase, Variant

# --------------------------------------------------------------------------- reading


class VariantSerializer(serializers.ModelSerializer):
    base = serializers.BooleanField(source="is_base")
    audience = serializers.SlugRelatedField[Audience](slug_field="slug", read_only=True)

    class Meta:
        model = Variant
        fields = ["key", "uid", "name", "value", "content", "base", "weight", "audience",
                  "priority"]


class ExperienceGoalSerializer(serializers.Serializer):
    goal = serializers.CharField(source="goal.key")
    event = serializers.CharField(source="goal.event")
    primary = serializers.BooleanField()


class ExperienceSerializer(serializers.ModelSerializer):
    variants = serializers.SerializerMethodField()
    goals = serializers.SerializerMethodField()
    target_audiences = serializers.SerializerMethodField()
    winner = serializers.SerializerMethodField()

    class Meta:
        model = Experience
        fields = [
            "key", "uid", "name", "description", "type", "distribution", "status",
            "value_type", "traffic_allocation", "target", "target_audiences", "variants",
            "goals", "phase", "winner", "seed", "hash_version", "bandit_interval_minutes",
            "bandit_burn_in_hours", "version", "created_at", "updated_at", "activated_at",
            "completed_at",
        ]

    def get_variants(self, exp: Experience) -> list[dict[str, Any]]:
        variants = sorted(exp.variants.all(), key=lambda v: (v.position, v.pk))
        return list(VariantSerializer(variants, many=True).data)

    def get_goals(self, exp: Experience) -> list[dict[str, Any]]:
        links = sorted(exp.experience_goals.all(), key=lambda link: (not link.primary, link.pk))
        return list(ExperienceGoalSerializer(links, many=True).data)

    def get_target_audiences(self, exp: Experience) -> list[str]:
        return sorted(audience.slug for audience in exp.target_audiences.all())

    def get_winner(self, exp: Experience) -> str | None:
        return exp.winner.key if exp.winner_id and exp.winner else None


class PhaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Phase
        fields = ["number", "started_at", "ended_at", "weights", "traffic_allocation",
                  "variant_keys", "reason"]


class GoalSerializer(serializers.ModelSerializer):
    experiences = serializers.SerializerMethodField()

    class Meta:
        model = Goal
        fields = ["key", "name", "description", "event", "where", "stream", "experiences",
                  "created_at", "updated_at"]

    def get_experiences(self, goal: Goal) -> list[str]:
        return sorted(exp.key for exp in goal.experiences.all())


class ExperienceProblemSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False)


class ExperienceRefusalSerializer(serializers.Serializer):
    """A refused change (400, or 409 for a conflict): every problem found."""

    code = serializers.CharField()
    message = serializers.CharField()
    problems = ExperienceProblemSerializer(many=True)


class ActivationCheckSerializer(serializers.Serializer):
    ready = serializers.BooleanField()
    problems = ExperienceProblemSerializer(many=True)


# --------------------------------------------------------------------------- writing


class JSONValueField(serializers.JSONField):
    """Any JSON, null included."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)


class VariantInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=100)
    uid = serializers.CharField(max_length=16, required=False,
                                help_text="Names an existing variant (to rename its key).")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    value = JSONValueField(help_text="A string, or JSON for JSON experiences; the key when "
                                     "left out.")
    content = serializers.JSONField(required=False, help_text="A JSON object for the site "
                                                              "or CMS to render.")
    base = serializers.BooleanField(required=False, help_text="The control / base variant.")
    weight = serializers.FloatField(required=False, allow_null=True,
                                    help_text="Custom split: a share from 0 to 1.")
    audience = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                     help_text="Segmented: the audience slug that gets it.")
    priority = serializers.IntegerField(required=False,
                                        help_text="Segmented: lower is matched first.")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        values = super().to_internal_value(data)
        if "audience" in values and not values["audience"]:
            values["audience"] = None
        return values


class GoalLinkInputSerializer(serializers.Serializer):
    goal = serializers.CharField(max_length=100)
    primary = serializers.BooleanField(default=False)


class ExperienceInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    type = serializers.CharField(required=False, help_text="ab | segmented")
    distribution = serializers.CharField(required=False, help_text="equal | custom | bandit")
    value_type = serializers.CharField(required=False, help_text="string | json")
    traffic_allocation = serializers.FloatField(required=False)
    target = serializers.CharField(required=False, help_text="everyone | audiences")
    target_audiences = serializers.ListField(child=serializers.CharField(), required=False)
    variants = VariantInputSerializer(many=True, required=False)
    goals = GoalLinkInputSerializer(many=True, required=False)
    seed = serializers.CharField(max_length=100, required=False, allow_blank=True)
    hash_version = serializers.IntegerField(required=False)
    bandit_interval_minutes = serializers.IntegerField(
        required=False, help_text="Bandits: minutes between reweightings, 15 to 10080 (default "
        "60); the schedule runs every 15 minutes. Out of range: 400 invalid_bandit_interval.")
    bandit_burn_in_hours = serializers.IntegerField(
        required=False, help_text="Bandits: hours after a phase starts before the first "
        "reweighting, 0 to 720 (default 24). Out of range: 400 invalid_bandit_burn_in.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                   help_text="Why, when the change starts a new phase.")


class CompleteInputSerializer(serializers.Serializer):
    winner = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                   help_text="The variant (key or uid) rolled out to everyone; "
                                             "none: everyone gets the base variant.")


class SplitInputSerializer(serializers.Serializer):
    weights = serializers.DictField(child=serializers.FloatField(), required=False,
                                    help_text="Share per variant key (or uid), summing to 1.")
    traffic_allocation = serializers.FloatField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)


class GoalInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    event = serializers.CharField(max_length=200)
    where = serializers.JSONField(required=False, help_text="Property conditions, as in an "
                                  "audience rule's event node: [{property, op, value, type}]")
    stream = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                   help_text="Blank: any stream.")


# --------------------------------------------------------------------------- results (read only)
# These describe experiences.report.results_report for the OpenAPI schema.


class CountsSerializer(serializers.Serializer):
    visitors = serializers.IntegerField(help_text="Unique visitors.")
    total = serializers.IntegerField(help_text="Every event (impressions or conversions).")


class PrimaryCountsSerializer(CountsSerializer):
    rate = serializers.FloatField(help_text="Converters / visitors who saw the variant.")


class BayesianSerializer(serializers.Serializer):
    chance_to_beat_control = serializers.FloatField()
    uplift = serializers.FloatField(help_text="Relative change of the rate against control.")
    uplift_stddev = serializers.FloatField()
    credible_interval = serializers.ListField(child=serializers.FloatField(),
                                              help_text="95 % credible interval of the uplift.")
    risk_control = serializers.FloatField()
    risk_variant = serializers.FloatField(help_text="Expected relative loss of choosing it.")
    error = serializers.CharField(allow_null=True, help_text="baseline_zero | no_units | "
                                  "zero_variance: why it could not be compared.")


class FrequentistSerializer(serializers.Serializer):
    p_value = serializers.FloatField(help_text="Two-sided Welch t-test.")
    uplift = serializers.FloatField()
    uplift_stddev = serializers.FloatField()
    confidence_interval = serializers.ListField(child=serializers.FloatField())
    error = serializers.CharField(allow_null=True)


class ResultVariantSerializer(serializers.Serializer):
    key = serializers.CharField()
    uid = serializers.CharField()
    name = serializers.CharField()
    is_base = serializers.BooleanField()
    weight = serializers.FloatField(help_text="Its share of the split now.")
    visitors = serializers.IntegerField(help_text="Visitors assigned to it in the phase.")
    impressions = CountsSerializer()
    conversions = serializers.DictField(child=CountsSerializer(), help_text="Per goal key.")
    primary = PrimaryCountsSerializer()
    visible = serializers.BooleanField(help_text="Enough data to show comparisons.")
    chance_to_be_best = serializers.FloatField(allow_null=True)
    bayesian = BayesianSerializer(allow_null=True)
    frequentist = FrequentistSerializer(allow_null=True)


class GoalVariantSerializer(serializers.Serializer):
    key = serializers.CharField()
    visitors = serializers.IntegerField(help_text="Visitors who saw the variant.")
    converters = serializers.IntegerField()
    conversions = serializers.IntegerField()
    rate = serializers.FloatField()
    chance_to_be_best = serializers.FloatField(allow_null=True)
    bayesian = BayesianSerializer(allow_null=True)
    frequentist = FrequentistSerializer(allow_null=True)


class GoalResultsSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    event = serializers.CharField()
    primary = serializers.BooleanField()
    variants = GoalVariantSerializer(many=True)


class SrmSerializer(serializers.Serializer):
    p_value = serializers.FloatField()
    mismatch = serializers.BooleanField()
    threshold = serializers.FloatField()
    expected = serializers.ListField(child=serializers.FloatField())


class WinnerSerializer(serializers.Serializer):
    variant = serializers.CharField(allow_null=True)
    reason = serializers.CharField(help_text="winner | not_enough_data | sample_ratio_mismatch "
                                   "| too_early | no_clear_winner | not_an_ab_test")


class ThresholdsSerializer(serializers.Serializer):
    min_impressions = serializers.IntegerField()
    min_conversions = serializers.IntegerField()
    winner_chance = serializers.FloatField()
    min_days = serializers.FloatField()


class BanditScheduleSerializer(serializers.Serializer):
    interval_minutes = serializers.IntegerField()
    burn_in_hours = serializers.IntegerField()
    schedule_minutes = serializers.IntegerField(help_text="How often the schedule runs.")
    min_visitors_per_arm = serializers.IntegerField()
    last_reweight_at = serializers.DateTimeField(allow_null=True)
    last_weights = serializers.DictField(child=serializers.FloatField(), allow_null=True)
    next_reweight_at = serializers.DateTimeField(allow_null=True,
                                                 help_text="Null unless it is active.")
    next_reweight_waits_for_schedule = serializers.BooleanField()
    reweights = serializers.IntegerField(help_text="Reweightings in the current phase.")


class BanditEngineSerializer(BanditScheduleSerializer):
    algorithm = serializers.CharField()
    draws = serializers.IntegerField()
    min_share = serializers.FloatField()


class EngineSerializer(serializers.Serializer):
    name = serializers.CharField()
    metric = serializers.CharField()
    effect = serializers.CharField()
    alpha = serializers.FloatField()
    interval_level = serializers.FloatField()
    bayesian_prior = serializers.CharField()
    frequentist_test = serializers.CharField()
    chance_to_be_best = serializers.CharField()
    srm_test = serializers.CharField()
    srm_p_threshold = serializers.FloatField()
    thresholds = ThresholdsSerializer()
    bandit = BanditEngineSerializer(allow_null=True)


class WarningSerializer(serializers.Serializer):
    code = serializers.CharField()
    count = serializers.IntegerField()
    first_at = serializers.DateTimeField()
    last_at = serializers.DateTimeField()
    sample = serializers.JSONField()


class ResultPhaseSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()
    current = serializers.BooleanField()


class SeriesField(serializers.DictField):
    """Per variant key, one value per time (null where the variant had no figure)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.ListField(
            child=serializers.FloatField(allow_null=True)), **kwargs)


class SplitHistorySerializer(serializers.Serializer):
    times = serializers.ListField(child=serializers.DateTimeField())
    series = SeriesField(help_text="Each variant's share of the split, a step per time.")


class HistorySerializer(serializers.Serializer):
    times = serializers.ListField(child=serializers.DateTimeField(),
                                  help_text="The snapshots' times (at most 400), then now.")
    conversion_rate = SeriesField(help_text="Cumulative primary-goal rate per variant.")
    chance_to_be_best = SeriesField()
    split = SplitHistorySerializer()


class ResultsSerializer(serializers.Serializer):
    """One phase's results, as the results page shows them, at full precision."""

    experience = serializers.CharField()
    phase = serializers.IntegerField()
    as_of = serializers.DateTimeField(help_text="When the figures were computed.")
    at = serializers.DateTimeField(help_text="The same as as_of (the stored snapshots' name).")
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    days_running = serializers.FloatField()
    type = serializers.CharField()
    distribution = serializers.CharField()
    goals = serializers.ListField(child=serializers.DictField())
    primary_goal = serializers.CharField(allow_null=True)
    thresholds = ThresholdsSerializer()
    variants = ResultVariantSerializer(many=True, help_text="The control first.")
    visible = serializers.BooleanField()
    srm = SrmSerializer(allow_null=True, help_text="Null for segmented experiences.")
    winner = WinnerSerializer()
    warnings = WarningSerializer(many=True)
    engine = EngineSerializer()
    by_goal = GoalResultsSerializer(many=True, help_text="Every goal, the primary first.")
    history = HistorySerializer(help_text="The page's charts over time.")
    phases = ResultPhaseSerializer(many=True)


class ReweightSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="reweighted")
    weights = serializers.DictField(child=serializers.FloatField())
    arms = serializers.DictField(child=serializers.ListField(child=serializers.IntegerField()),
                                 help_text="Per variant key: [visitors who saw it, converters].")
    bandit = BanditScheduleSerializer()
