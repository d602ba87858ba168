"""Audiences: rules over profiles (extending the rule core of profiles.conditions), their SQL
compiler and real-time evaluator, memberships and their change log. May import cdp_site and
profiles; learns of experiences only through settings hooks (STRATA_AUDIENCE_USERS_HOOKS)."""
