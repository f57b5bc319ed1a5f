"""What the assets share: the owner, and the external source they are read from."""

import dagster as dg

OWNER = "team:data-platform"

PUBSUB_SUBSCRIPTION = dg.AssetSpec(
    "pubsub_subscription",
    group_name="ingestion",
    kinds={"pubsub", "gcp"},
    owners=[OWNER],
    description=(
        "The Pub/Sub subscription (PUBSUB_SUBSCRIPTION) that `pubsub_events_sensor` drains: "
        "good messages become `events`, the others `events_quarantine`. External: nothing "
        "here materializes it."
    ),
)
