"""Experiences: A/B tests, bandits and segmented experiences, bucketing, the decision API and
OFREP, results and their statistics. May import cdp_site, profiles and audiences."""
