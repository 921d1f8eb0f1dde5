"""LogQL metric queries over many log lines: lines per second through the evaluator (store
read, labels, pipeline, range and vector aggregation), on a DuckDB file of synthetic records
(5 services, logfmt access-log lines, a trace and span id each, as OTLP logs carry: so every
line is its own series until a `sum by` folds them, as in Loki 3).

    .venv/bin/python benchmarks/logql_metrics.py [--records 200000] [--rounds 3]
        [--other-src DIR]

`--other-src`: the same measurement with another source tree's `meshscope` (e.g. a
`git worktree add /tmp/old <commit>` checkout's `src`) in alternating rounds, with the ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERIES = (
    'sum by (service_name) (count_over_time({service_name=~".+"}[1m]))',
    'sum by (level) (rate({service_name=~".+"} |= "status=500" [5m]))',
    'quantile_over_time(0.99, {service_name=~".+"} | logfmt | unwrap duration(duration) [5m])'
    " by (service_name)",
    'sum by (method, status) (count_over_time({service_name="api"} | pattern'
    ' "<_> status=<status> duration=<_> path=<_> method=<method>" [5m]))',
)
S = 10**9


def build(path: Path, records: int) -> int:
    """The file of `records` lines over the hour before now; the hour's start (ns)."""
    from meshscope.model.logs import LogRecord, Severity
    from meshscope.store.duckdb import DuckDBStorage

    start = (time.time_ns() // S - 3600) * S
    rnd = random.Random(7)
    services = ("api", "cart", "db", "web", "worker")
    storage = DuckDBStorage(path)
    batch = []
    for i in range(records):
        service = services[i % len(services)]
        status, method = rnd.choice((200, 200, 201, 500)), ("GET", "POST")[i % 2]
        body = (f'msg="handled {i}" status={status} duration={rnd.randint(1, 900)}ms '
                f"path=/p{i % 4} method={method}")  # fmt: skip
        batch.append(LogRecord(start + i * 3600 * S // records, body, service, Severity.INFO, "",
                               f"{i + 1:032x}", f"{i + 1:016x}", {"http.method": "GET"},
                               {"service.name": service}))  # fmt: skip
        if len(batch) == 20_000:
            storage.logs.write_logs(batch)
            batch = []
    if batch:
        storage.logs.write_logs(batch)
    storage.close()
    return start


def measure(path: Path, start: int) -> list[float]:
    """Lines per second of each query over the hour at 1-minute steps."""
    from meshscope.query.logql import parse
    from meshscope.query.logql.metrics import Steps, evaluate
    from meshscope.query.logql.select import Scan
    from meshscope.store.duckdb import DuckDBStorage

    storage = DuckDBStorage(path)
    steps = Steps(start + 300 * S, start + 3600 * S, 60 * S)
    out = []
    for query in QUERIES:
        expr = parse(query)
        scan = Scan()
        began = time.perf_counter()
        evaluate(storage.logs, expr, steps, scan)  # type: ignore[arg-type]
        out.append(scan.lines / (time.perf_counter() - began))
    storage.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--other-src", type=Path, help="another source tree's src")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # path, start: one round
    args = parser.parse_args()
    if args.measure:
        print(" ".join(f"{rate:.1f}" for rate in measure(Path(args.measure[0]),
                                                         int(args.measure[1]))))  # fmt: skip
        return
    path = Path(tempfile.mkdtemp(prefix="meshscope-logql-")) / "logs.duckdb"
    start = build(path, args.records)
    trees: dict[str, Path | None] = {"this": None}
    if args.other_src:
        trees["other"] = args.other_src
    rates: dict[str, list[list[float]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
        for name in order:
            env = dict(os.environ)
            tree = trees[name]
            if tree is not None:
                env["PYTHONPATH"] = str(tree.resolve())
            done = subprocess.run(
                [sys.executable, __file__, "--measure", str(path), str(start)],
                capture_output=True, text=True, env=env, check=True,
            )  # fmt: skip
            rates[name].append([float(x) for x in done.stdout.split()])
    print(f"{args.records} records over an hour, 1-minute steps, {args.rounds} rounds (median)")
    for i, query in enumerate(QUERIES):
        this = statistics.median(r[i] for r in rates["this"])
        line = f"  {this:>9,.0f} lines/s"
        if "other" in rates:
            other = statistics.median(r[i] for r in rates["other"])
            line += f"  other {other:>9,.0f}  ratio {this / other:.2f}"
        print(f"{line}  {query}")


if __name__ == "__main__":
    main()
