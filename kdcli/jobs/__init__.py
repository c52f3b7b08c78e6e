"""Whole jobs of kdcli steps: `run_recipe` (a recipe file), `study` (the study's grid) and
`search` (the smallest student that meets constraints), all on one runner (`runner.py`)."""
