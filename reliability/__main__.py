"""`python -m reliability [--quick] [--lake local|gcs] [--seed N] [--out RELIABILITY.md]`.

Runs the plan and writes its table into the file between the results markers
(replacing the previous figures). Exit status 1 if anything was lost or doubled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reliability.harness import LAKES
from reliability.plan import render, run_plan

START = "<!-- reliability:results:start -->"
END = "<!-- reliability:results:end -->"


def write_results(path: Path, table: str) -> None:
    block = f"{START}\n{table}{END}"
    text = path.read_text() if path.exists() else f"# Reliability\n\n{START}\n{END}\n"
    if START in text and END in text:
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the small plan `make test` runs")
    parser.add_argument(
        "--lake",
        choices=LAKES,
        default="local",
        help="where the crash chains keep their lake: gcs = gs:// on the test suite's GCS "
        "fake (the full plan runs a subset there anyway)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("RELIABILITY.md"))
    args = parser.parse_args(argv)
    rows, seconds = run_plan(args.quick, args.seed, args.lake)
    table = render(rows, quick=args.quick, seconds=seconds, seed=args.seed, lake=args.lake)
    write_results(args.out, table)
    print(table)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
