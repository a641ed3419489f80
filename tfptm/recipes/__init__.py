"""Whole jobs built from the floors below: the quickstart, recipes, summaries (floor 5)."""
