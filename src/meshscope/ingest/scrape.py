"""The scraper: pulls every static target on its job's interval, as Prometheus does.

Each target runs its own loop (started at a stable offset within the interval, so targets
spread out), so a slow target never delays another. One scrape: GET the metrics path with
Prometheus' Accept header, bounded by `scrape_timeout` for the whole exchange and by a body
size cap; parse (`exposition`), attach `job`/`instance`/static labels, add the synthetic
series `up`, `scrape_duration_seconds`, `scrape_samples_scraped` and
`scrape_samples_post_metric_relabeling`, and mark series that vanished since the previous
scrape stale (Prometheus' staleness NaN; not for folded histograms), all in one batch to the
sink. A failed scrape (timeout, connection error, non-2xx, unparsable body) is `up 0`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
import zlib
from dataclasses import dataclass

import httpx

from meshscope.clock import Clock, SystemClock
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.exposition import Exposition, parse_families, to_points
from meshscope.ingest.scrape_config import ScrapeConfig, ScrapeTarget
from meshscope.ingest.sink import IngestSink, OverloadedError, UnavailableError, UnstorableError
from meshscope.model.batch import Batch
from meshscope.model.metrics import Labels, MetricPoint, MetricType
from meshscope.tenancy.context import as_tenants

log = logging.getLogger(__name__)

ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
USER_AGENT = "meshscope-scraper/0.1"
MAX_BODY_BYTES = 64 * 1024 * 1024
PARSE_IN_THREAD_BYTES = 64 * 1024
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


class ScrapeError(Exception):
    """Why a scrape failed (its message is kept as `TargetHealth.last_error`)."""


@dataclass(slots=True)
class TargetHealth:
    """What the scraper knows about one target (read by `/metrics`)."""

    target: ScrapeTarget
    interval_s: float
    timeout_s: float
    up: bool = False
    last_scrape_ns: int = 0
    last_duration_s: float = 0.0
    last_samples: int = 0
    last_error: str = ""
    scrapes: int = 0
    failures: int = 0
    undelivered: int = 0
    """Scrapes parsed but refused by the sink (overloaded or unavailable)."""
    previous: frozenset[tuple[str, Labels]] = frozenset()


class Scraper:
    def __init__(
        self,
        config: ScrapeConfig,
        sink: IngestSink,
        clock: Clock | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.sink = sink
        self.clock = clock or SystemClock()
        self.max_body_bytes = max_body_bytes
        self.targets = [
            TargetHealth(target, job.scrape_interval_s, job.scrape_timeout_s)
            for job in config.jobs
            for target in job.scrape_targets()
        ]

    async def run(self, stop: asyncio.Event) -> None:
        """Scrape every target on its interval until `stop` is set."""
        if not self.targets:
            return
        async with httpx.AsyncClient(headers={"User-Agent": USER_AGENT}) as client:
            loops = [asyncio.create_task(self._loop(h, client, stop)) for h in self.targets]
            try:
                await stop.wait()
            finally:
                for task in loops:
                    task.cancel()
                await asyncio.gather(*loops, return_exceptions=True)

    async def _loop(
        self, health: TargetHealth, client: httpx.AsyncClient, stop: asyncio.Event
    ) -> None:
        interval = health.interval_s
        offset = zlib.crc32(health.target.url.encode()) % 1000 / 1000 * interval
        next_at = time.monotonic() + offset
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(next_at - time.monotonic(), 0))
                return
            try:
                await self.scrape(health, client)
            except Exception:  # a bug must not end this target's scraping for good
                log.exception("scrape crashed", extra={"target": health.target.url})
            next_at += interval
            if next_at < time.monotonic():  # fell behind (a long stall): skip missed slots
                next_at = time.monotonic() + interval

    async def scrape(self, health: TargetHealth, client: httpx.AsyncClient) -> Batch:
        """Scrape `health.target` once and deliver the batch to the sink; never raises."""
        target = health.target
        started_ns = self.clock.now_ns()
        started = time.perf_counter()
        labels = target.target_labels()
        try:
            body, content_type = await self._fetch(client, target, health.timeout_s)
            exposition = await _parse(body, content_type, labels, started_ns)
            points, samples, up, error = exposition.points, exposition.samples, True, ""
        except (ScrapeError, DecodeError) as failure:
            points, samples, up, error = [], 0, False, str(failure)
        duration = time.perf_counter() - started
        current = frozenset((p.name, p.labels) for p in points if p.histogram is None)
        time_ns = started_ns - started_ns % 1_000_000
        points.extend(_stale(health.previous - current, time_ns))
        points.extend(_synthetic(labels, time_ns, up, duration, samples))
        health.previous = current
        health.up, health.last_error, health.last_samples = up, error, samples
        health.last_scrape_ns, health.last_duration_s = started_ns, duration
        health.scrapes += 1
        health.failures += 0 if up else 1
        if error:
            log.info("scrape failed", extra={"target": target.url, "error": error})
        batch = Batch(metrics=points)
        try:
            with as_tenants(target.tenant):  # with tenancy on, the job's tenant's store
                await self.sink.submit(batch)
        except (OverloadedError, UnavailableError, UnstorableError) as refused:
            health.undelivered += 1
            log.warning("scrape not stored", extra={"target": target.url, "error": str(refused)})
        return batch

    async def _fetch(
        self, client: httpx.AsyncClient, target: ScrapeTarget, timeout_s: float
    ) -> tuple[bytes, str]:
        headers = {"Accept": ACCEPT, "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout_s:g}"}
        try:
            async with asyncio.timeout(timeout_s):
                async with client.stream(
                    "GET", target.url, headers=headers, timeout=timeout_s
                ) as response:
                    if response.status_code // 100 != 2:
                        raise ScrapeError(f"server returned HTTP status {response.status_code}")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_body_bytes:
                            raise ScrapeError(f"body exceeds {self.max_body_bytes} bytes")
                        chunks.append(chunk)
                    return b"".join(chunks), response.headers.get("content-type", "")
        except TimeoutError:
            raise ScrapeError(f"scrape timed out after {timeout_s:g} s") from None
        except httpx.HTTPError as failure:
            raise ScrapeError(f"{type(failure).__name__}: {failure}") from None


async def _parse(body: bytes, content_type: str, labels: Labels, scrape_ns: int) -> Exposition:
    def work() -> Exposition:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("exposition is not UTF-8") from None
        return to_points(parse_families(text, content_type), labels, scrape_ns)

    if len(body) >= PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(work)
    return work()


def _stale(gone: frozenset[tuple[str, Labels]], time_ns: int) -> list[MetricPoint]:
    return [
        MetricPoint(name, labels, time_ns, MetricType.GAUGE, STALE_NAN) for name, labels in gone
    ]


def _synthetic(
    labels: Labels, time_ns: int, up: bool, duration_s: float, samples: int
) -> list[MetricPoint]:
    values = (
        ("up", 1.0 if up else 0.0, "1 if the last scrape of the target succeeded, else 0."),
        ("scrape_duration_seconds", duration_s, "Duration of the scrape."),
        ("scrape_samples_scraped", float(samples), "Samples the target exposed."),
        (
            "scrape_samples_post_metric_relabeling",
            float(samples),
            "Samples left after metric relabeling (none is configured).",
        ),
    )
    return [
        MetricPoint(name, labels, time_ns, MetricType.GAUGE, value, None, help_)
        for name, value, help_ in values
    ]
