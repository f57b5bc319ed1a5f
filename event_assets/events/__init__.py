"""Pure event domain: decoding Pub/Sub messages, the event identity rule, table schemas.

No Dagster and no I/O here, so the rules can be read and tested on their own.

A pulled message takes one shape per stage; each name means one of them:

- `PendingPull` (`pubsub.client`): a Pull RPC in flight.
- `RawPull` (`pubsub.client`): one Pull's ack ids and its serialized `PullResponse`,
  undecoded (what crosses to a decode worker).
- `RawMessage` (`events.models`): one message on the hot path, the `PullResponse`
  fields as a NamedTuple; nothing validated.
- `PulledMessage` (here): one message validated (pydantic), for the paths that are not
  hot (hand-built messages; the tests' push-envelope decoder).
- `PulledRound` (`ingest`): a round's pulls decoded into the events and quarantine
  tables, not yet landed or acked.
"""

from event_assets.events.decode import (
    decode_batch,
    decode_message,
)
from event_assets.events.identity import (
    canonical_json,
    event_id_of,
    event_id_of_canonical,
    id_words,
)
from event_assets.events.json_text import MAX_JSON_DEPTH
from event_assets.events.models import (
    ENVELOPE_ID_PREFIX,
    DecodedBatch,
    DecodedEvent,
    PulledMessage,
    QuarantineRecord,
    ReasonCode,
)
from event_assets.events.schema import (
    EVENT_COLUMNS_SCHEMA,
    EVENT_ID_WORDS,
    EVENTS_TABLE_SCHEMA,
    LANDED_EVENTS_SCHEMA,
    QUARANTINE_COLUMNS_SCHEMA,
    QUARANTINE_TABLE_SCHEMA,
    REQUIRED_EVENT_COLUMNS,
)
from event_assets.events.timestamps import parse_rfc3339

__all__ = [
    "ENVELOPE_ID_PREFIX",
    "EVENTS_TABLE_SCHEMA",
    "EVENT_COLUMNS_SCHEMA",
    "EVENT_ID_WORDS",
    "LANDED_EVENTS_SCHEMA",
    "MAX_JSON_DEPTH",
    "QUARANTINE_COLUMNS_SCHEMA",
    "QUARANTINE_TABLE_SCHEMA",
    "REQUIRED_EVENT_COLUMNS",
    "DecodedBatch",
    "DecodedEvent",
    "PulledMessage",
    "QuarantineRecord",
    "ReasonCode",
    "canonical_json",
    "decode_batch",
    "decode_message",
    "event_id_of",
    "event_id_of_canonical",
    "id_words",
    "parse_rfc3339",
]
