from __future__ import annotations

import pytest

from meshscope.ingest.prom_names import format_float, label_name, label_value, metric_name


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        # Examples of the OTel Prometheus compatibility spec and the Prometheus docs.
        ("http.server.request.duration", "s", "", "http_server_request_duration_seconds"),
        ("http.server.duration", "ms", "", "http_server_duration_milliseconds"),
        ("system.memory.usage", "By", "gauge", "system_memory_usage_bytes"),
        ("system.cpu.utilization", "1", "gauge", "system_cpu_utilization_ratio"),
        ("requests.count", "1", "counter", "requests_count_total"),
        ("http.requests", "{request}", "counter", "http_requests_total"),
        ("process.runtime.gc.total", "", "counter", "process_runtime_gc_total"),
        ("network.io", "By/s", "gauge", "network_io_bytes_per_second"),
        ("queue.latency_seconds", "s", "", "queue_latency_seconds"),
        ("active", "{request}", "", "active"),
        ("2xx.responses", "", "", "_2xx_responses"),
        ("weird-name__with::colons", "", "", "weird_name_with::colons"),
        ("temp", "Cel", "gauge", "temp_celsius"),
        ("custom", "furlongs/fortnight", "", "custom_furlongs_per_fortnight"),
    ],
)
def test_metric_names(name: str, unit: str, kind: str, expected: str) -> None:
    assert metric_name(name, unit, counter=kind == "counter", gauge=kind == "gauge") == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("http.method", "http_method"),
        ("k8s.pod.name", "k8s_pod_name"),
        ("123invalid", "key_123invalid"),
        ("a..b", "a_b"),
        ("__reserved", "__reserved"),
        ("__name__", "__name__"),  # reserved names whole, as Prometheus (was `__name_`)
        ("__meta.a__b", "__meta_a__b"),
        ("ünicode", "_nicode"),
    ],
)
def test_label_names(key: str, expected: str) -> None:
    assert label_name(key) == expected


def test_label_values() -> None:
    assert label_value("x") == "x"
    assert label_value(True) == "true"
    assert label_value(3) == "3"
    assert label_value(0.5) == "0.5"
    assert label_value(None) == ""
    assert label_value(b"\x01") == "01"
    assert label_value(["a", 1]) == '["a",1]'
    assert format_float(1.0) == "1"
    assert format_float(float("inf")) == "+Inf"
