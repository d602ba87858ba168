"""Template tags of every page (``strata_ui``)."""
