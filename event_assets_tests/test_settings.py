from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from event_assets.settings import RECENT_PARTITION_DAYS, SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "LAKE_URI",
        "PUBSUB_EMULATOR_HOST",
        "PUBSUB_TOPIC",
        "GCP_PROJECT_ID",
        "PARTITIONS_START_DATE",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.LAKE_URI == "./.data/lake"
    assert settings.topic_path == "projects/local-project/topics/events"
    assert settings.subscription_path == "projects/local-project/subscriptions/events-ingest"
    # Unset, only recent days have partitions (a deployment sets its own start).
    today = datetime.now(UTC).date()
    assert settings.PARTITIONS_START_DATE == today - timedelta(days=RECENT_PARTITION_DAYS)
    assert settings.FUTURE_SKEW_SECONDS == 300
    assert settings.EVENT_TIME_FIELD is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LAKE_URI", "s3://bucket/lake"),
        ("LAKE_URI", "gs://"),
        ("MAX_MESSAGE_BYTES", "-1"),
        ("MAX_MESSAGE_BYTES", "lots"),
        ("PULL_BATCH_SIZE", "5000"),
        ("ACK_DEADLINE_SECONDS", "5"),
        ("PUBSUB_EMULATOR_HOST", "localhost"),
        ("PARTITIONS_START_DATE", "yesterday"),
        ("FUTURE_SKEW_SECONDS", "-1"),
        ("FUTURE_SKEW_SECONDS", "86401"),
    ],
)
def test_invalid_value_is_one_line_naming_the_variable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"invalid setting {name}: ")
    assert "\n" not in message


def test_gs_and_file_uris(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAKE_URI", "gs://bucket/prefix/")
    assert load_settings().LAKE_URI == "gs://bucket/prefix"
    monkeypatch.setenv("LAKE_URI", f"file://{tmp_path}/lake")
    assert load_settings().LAKE_URI == str(tmp_path / "lake")


def test_vacuum_retention_below_safe_default_needs_explicit_permission(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VACUUM_RETENTION_HOURS", "24")
    with pytest.raises(SettingsError, match="VACUUM_ALLOW_BELOW_DEFAULT=true"):
        load_settings()
    monkeypatch.setenv("VACUUM_ALLOW_BELOW_DEFAULT", "true")
    assert load_settings().VACUUM_RETENTION_HOURS == 24
