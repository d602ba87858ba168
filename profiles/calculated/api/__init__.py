"""The calculated attributes API under /api/v1/calculated-attributes/."""
