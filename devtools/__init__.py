"""Dev tooling, not shipped in the image: `make dev`'s and `make demo`'s runners, the demo
event generator and the webserver helper the tests and the rehearsal share.

Importable from a checkout (the dev install puts the repository root on the path);
the production wheel holds `event_assets` only.
"""
