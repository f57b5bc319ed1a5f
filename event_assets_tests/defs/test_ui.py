"""What a data engineer sees in the UI after minutes of `make dev`-like load, through the
webserver's GraphQL API (what the README's screenshots show): no failed or never-ending
check, only days that can hold data, contract days materialized, a bounded queue, and a
day launched from the UI finishing ahead of the routine merges with that day's checks.

The real daemon and webserver on a throwaway DAGSTER_HOME, with `make dev`'s trickle
(demo events and a bad message every few seconds). Deadlines only bound a hang.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from devtools.run_dev import trickle
from devtools.webserver import Webserver, WebserverError

from ..support.daemon import DaemonLab, QueueSampler
from ..support.ui import materialize_like_the_ui, read_ui

CONTRACTS = ("order_created_v1", "person_v1")
# Demo events fall on today and the two days before; people (plain JSON) on today only.
DEMO_DAYS = 3
RECENT_DAYS = 6  # PARTITIONS_START_DATE this many days back: 7 partitions
# Contract days refresh at the first two-minute tick after their `events` day changed,
# evaluated every 30 s: a few minutes on a loaded machine. The bound catches a hang.
CONTRACTS_TIMEOUT = 420.0
SETTLE_TIMEOUT = 300.0

PER_DAY_CHECKS = {
    "cross_partition_duplicates",
    "event_id_unique",
    "landing_reconciliation",
    "required_columns_non_null",
}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_after_minutes_of_trickle_the_ui_shows_the_truth(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    start = today - timedelta(days=RECENT_DAYS)
    with DaemonLab(tmp_path, name="ui-test", PARTITIONS_START_DATE=start.isoformat()) as lab:
        lab.start_daemon()
        stop = threading.Event()
        publisher = threading.Thread(
            target=trickle, args=(lab.settings, stop), kwargs={"events": 200, "seconds": 5}
        )
        with (
            Webserver(lab.env, tmp_path / "webserver.log") as webserver,
            QueueSampler(lab.home) as sampler,
        ):
            try:
                webserver.wait_until_loaded(120.0)
            except WebserverError as exc:
                pytest.fail(str(exc))
            publisher.start()
            try:
                days = {(today - timedelta(days=n)).isoformat() for n in range(DEMO_DAYS)}

                # Contracts keep up under the trickle: each day with events of a
                # contract's types is materialized there too.
                def contracts_caught_up() -> bool:
                    return all(
                        days <= lab.instance.get_materialized_partitions(dg.AssetKey(contract))
                        for contract in CONTRACTS
                    )

                lab.wait_for(contracts_caught_up, timeout=CONTRACTS_TIMEOUT, what="contract days")

                # A day launched from the UI while the routine merges go on.
                yesterday = (today - timedelta(days=1)).isoformat()
                run_id = materialize_like_the_ui(webserver, "events", yesterday)

                def finished() -> dg.DagsterRun | None:
                    run = lab.instance.get_run_by_id(run_id)
                    return run if run is not None and run.is_finished else None

                manual = lab.wait_for(finished, timeout=SETTLE_TIMEOUT, what="the UI's run")
                assert manual.status == dg.DagsterRunStatus.SUCCESS
                assert manual.tags.get("dagster/priority", "0") == "0"
            finally:
                stop.set()
                publisher.join(timeout=60)
            queue = sampler.take()
            lab.wait_until_idle(timeout=SETTLE_TIMEOUT)
            ui = read_ui(webserver)

    # The UI's run of a day ran that day's checks, none of the whole table.
    assert manual.asset_check_selection is not None
    assert {key.name for key in manual.asset_check_selection} == PER_DAY_CHECKS
    assert {key.asset_key.to_user_string() for key in manual.asset_check_selection} == {"events"}
    # No false alarm, nothing "in progress" for ever.
    assert ui.checks_with("FAILED", "EXECUTION_FAILED") == {}
    assert ui.checks_with("IN_PROGRESS") == {}
    # Partition health: the recent days only, the demo's days materialized.
    events = ui.partitions["events"]
    assert events.partitions == RECENT_DAYS + 1
    assert events.materialized == DEMO_DAYS
    assert events.failed == 0
    for contract in CONTRACTS:
        assert ui.partitions[contract].materialized >= 1
    # The queue stayed bounded: at most one routine merge waiting per day.
    assert queue.max_queued_one_partition <= 1
    assert queue.max_queued <= DEMO_DAYS
    assert ui.queued_runs == 0
