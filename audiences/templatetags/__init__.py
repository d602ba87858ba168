"""Template tags of the audience pages (audience_ui)."""
