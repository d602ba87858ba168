"""Calculated attributes: windowed aggregates of a profile's events (``90_day_revenue``), kept
incrementally by a pipeline step (``attributes.compute``), corrected on a schedule and
backfilled in the background; ``api/`` is /api/v1/calculated-attributes/. May import
cdp_site and the rest of ``profiles``.
"""
