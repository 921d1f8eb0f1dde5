"""Prometheus remote write 1.0: a snappy-compressed `prometheus.WriteRequest` -> metric points.

Mapping, as Prometheus' own receiver stores it:
- each TimeSeries is one series: `__name__` is the point name, the other labels (sorted, empty
  values dropped as Prometheus does) its labels; each Sample one point, ms -> ns. Staleness
  markers (Prometheus' special NaN) are kept bit for bit, so PromQL sees series end;
- the type, help and unit come from the request's metadata (Prometheus sends it in separate
  requests every minute, so `RemoteWriteDecoder` remembers it across requests, bounded);
  a series with no metadata is UNKNOWN;
- classic histograms and summaries stay the separate `_bucket`/`_sum`/`_count` series they
  arrive as (COUNTERs), not folded into HISTOGRAM points: Prometheus shards series across its
  send queues by series hash, so the buckets of one histogram at one timestamp arrive in
  different requests, and a receiver cannot fold them without holding samples back. PromQL
  (`histogram_quantile(..., rate(x_bucket[5m]))`) works the same on either form;
- series without a name, with a duplicate label name, or carrying native histograms (not
  supported) are rejected, and so are samples whose timestamp does not fit int64 nanoseconds
  (past +-9.2e15 ms): the rest is stored and the answer is 400 naming them, as Prometheus
  does for samples it cannot append. Exemplars are ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from google.protobuf.message import DecodeError as ProtobufDecodeError

from meshscope.ingest.body import uncompress_snappy
from meshscope.ingest.checks import time_fits
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp_common import Decoded, Rejections
from meshscope.ingest.prompb.remote_pb2 import WriteRequest
from meshscope.ingest.prompb.types_pb2 import MetricMetadata, TimeSeries
from meshscope.model.batch import Batch
from meshscope.model.metrics import MetricPoint, MetricType
from meshscope.tenancy.context import write_tenant

NAME = "__name__"
NS_PER_MS = 1_000_000
MAX_METADATA_FAMILIES = 100_000

_FAMILY_TYPES = {
    MetricMetadata.COUNTER: MetricType.COUNTER,
    MetricMetadata.GAUGE: MetricType.GAUGE,
    MetricMetadata.HISTOGRAM: MetricType.HISTOGRAM,
    MetricMetadata.GAUGEHISTOGRAM: MetricType.GAUGE,
    MetricMetadata.SUMMARY: MetricType.SUMMARY,
    MetricMetadata.INFO: MetricType.GAUGE,
    MetricMetadata.STATESET: MetricType.GAUGE,
    MetricMetadata.UNKNOWN: MetricType.UNKNOWN,
}
_BAD_TIME = "sample timestamps must be within +-9.2e15 ms (int64 nanoseconds)"
_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created", "_info", "_gsum", "_gcount")


def parse_write_request(data: bytes) -> WriteRequest:
    request = WriteRequest()
    try:
        request.ParseFromString(data)
    except ProtobufDecodeError as error:
        raise DecodeError(f"invalid prometheus.WriteRequest protobuf: {error}") from None
    return request


class RemoteWriteDecoder:
    """Decodes write requests, remembering metric metadata across them (thread-safe), each
    tenant's apart (`write_tenant`: one tenant's HELP, type and unit are never another's)."""

    def __init__(self, max_families: int = MAX_METADATA_FAMILIES) -> None:
        self.max_families = max_families  # per tenant
        self._metadata: dict[str, dict[str, tuple[MetricType, str, str]]] = {}
        self._lock = threading.Lock()

    def decode(self, body: bytes, limit: int) -> Decoded:
        """Uncompress and decode one request body; raises DecodeError (BodyTooLargeError)."""
        return self.decode_request(parse_write_request(uncompress_snappy(body, limit)))

    def decode_request(self, request: WriteRequest) -> Decoded:
        with self._lock:
            metadata = self._metadata.setdefault(write_tenant(), {})
            self._remember(request.metadata, metadata)
            rejections = Rejections()
            points: list[MetricPoint] = []
            for series in request.timeseries:
                self._series(series, metadata, points, rejections)
        return rejections.result(Batch(metrics=points), "series")

    def _remember(
        self, entries: Sequence[MetricMetadata], metadata: dict[str, tuple[MetricType, str, str]]
    ) -> None:
        for entry in entries:
            name = entry.metric_family_name
            if name not in metadata and len(metadata) >= self.max_families:
                continue
            kind = _FAMILY_TYPES.get(entry.type, MetricType.UNKNOWN)
            metadata[name] = (kind, entry.help, entry.unit)

    @staticmethod
    def _series(
        series: TimeSeries,
        metadata: dict[str, tuple[MetricType, str, str]],
        points: list[MetricPoint],
        rejections: Rejections,
    ) -> None:
        if series.histograms:
            rejections.add("native histograms are not supported")
            return
        name = ""
        labels: dict[str, str] = {}
        for label in series.labels:
            if not label.name:  # as Prometheus' labels.IsValid
                rejections.add("empty label name")
                return
            if label.name in labels or (label.name == NAME and name):
                rejections.add(f"duplicate label name {label.name!r}")
                return
            if label.name == NAME:
                name = label.value
            elif label.value:
                labels[label.name] = label.value
        if not name:
            rejections.add("series without a __name__ label")
            return
        kind, help_, unit = _series_type(name, metadata)
        sorted_labels = tuple(sorted(labels.items()))
        out_of_range = False
        for sample in series.samples:
            time_ns = sample.timestamp * NS_PER_MS
            if not time_fits(time_ns):
                out_of_range = True
                continue
            points.append(
                MetricPoint(
                    name,
                    sorted_labels,
                    time_ns,
                    kind,
                    sample.value,
                    None,
                    help_,
                    unit,
                )
            )
        if out_of_range:  # counted once per series, like the other reasons
            rejections.add(_BAD_TIME)


def _series_type(
    name: str, metadata: dict[str, tuple[MetricType, str, str]]
) -> tuple[MetricType, str, str]:
    """The type, help and unit of series `name` from its family's metadata, if known.

    A histogram's or summary's `_bucket`/`_sum`/`_count` series are counters: they are stored
    as plain series (see the module docstring), and only the family name is a HISTOGRAM.
    """
    found = metadata.get(name)
    if found is not None:
        if found[0] is MetricType.HISTOGRAM:
            return MetricType.COUNTER, found[1], found[2]
        return found
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            family = metadata.get(name[: -len(suffix)])
            if family is not None:
                kind = family[0]
                if kind in (MetricType.HISTOGRAM, MetricType.SUMMARY):
                    kind = MetricType.COUNTER
                return kind, family[1], family[2]
    return MetricType.UNKNOWN, "", ""
