"""The reliability suite: try hard to lose or double data, and count what happened.

`python -m reliability [--quick]` runs every scenario and writes the figures into
RELIABILITY.md; `event_assets_tests/reliability/` runs the same scenarios under
pytest (a quick subset in `make test`, the full matrix with `-m slow`).
"""
