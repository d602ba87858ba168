"""Template tags of the profile pages (profile_ui)."""
