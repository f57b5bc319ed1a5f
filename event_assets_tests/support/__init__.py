"""Test-support code shared by the suites (fakes of external services)."""
