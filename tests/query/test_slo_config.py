"""The `slos` config section: defaults, a full example, and clear errors naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from meshscope.config import ConfigError, load_config
from meshscope.query.slo import AVAILABILITY, LATENCY, Slo
from meshscope.query.slo_config import parse_slos

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400 * 10**9


def test_no_slos_by_default() -> None:
    assert load_config(env={}).slos == ()


def test_the_example_file_loads() -> None:
    slos = load_config(ROOT / "examples" / "slos.yaml", env={}).slos
    assert [s.sli for s in slos] == [AVAILABILITY, LATENCY]
    assert slos[0] == Slo("checkout-availability", "checkout", 0.999, 30 * DAY)
    assert slos[1].threshold_ms == 400.0 and slos[1].operation == "POST /checkout"
    assert slos[1].window_ns == 7 * DAY


def test_defaults_and_windows(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"slos": [{"service": "a", "objective": 0.99, "window": "12h"}]})
    )
    [slo] = load_config(path, env={}).slos
    assert slo == Slo("a-availability", "a", 0.99, 12 * 3600 * 10**9)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"x": 1}, "'slos' must be a list"),
        ([1], "slos[0] must be a mapping"),
        ([{"objective": 0.9}], "slos[0].service must be a non-empty string"),
        ([{"service": "a"}], "slos[0].objective is required"),
        ([{"service": "a", "objective": 1}], "slos[0].objective must be between 0 and 1"),
        ([{"service": "a", "objective": True}], "slos[0].objective is required"),
        ([{"service": "a", "objective": 0.9, "window": "30 days"}], "slos[0].window must be"),
        ([{"service": "a", "objective": 0.9, "window": "0d"}], "slos[0].window must be"),
        ([{"service": "a", "objective": 0.9, "sli": "speed"}], "slos[0].sli must be one of"),
        ([{"service": "a", "objective": 0.9, "sli": "latency"}], "threshold_ms is required"),
        (
            [{"service": "a", "objective": 0.9, "sli": "latency", "threshold_ms": 300}],
            "slos[0].threshold_ms must be a bucket bound of duration_milliseconds (2, 4,",
        ),
        ([{"service": "a", "objective": 0.9, "threshold_ms": 400}], "only to sli: latency"),
        ([{"service": "a", "objective": 0.9, "target": 1}], "unknown setting slos[0].target"),
        (
            [{"service": "a", "objective": 0.9}, {"service": "a", "objective": 0.99}],
            "SLO name 'a-availability' appears twice",
        ),
    ],
)
def test_bad_slos_are_refused_with_the_setting_named(values: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_slos(values)
    assert message in str(caught.value)


def test_a_bad_slo_in_a_config_file_fails_loading(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("slos:\n  - service: a\n    objective: 2\n")
    with pytest.raises(ConfigError, match=r"slos\[0\]\.objective"):
        load_config(path, env={})


def test_every_slo_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    section = doc[doc.index("## SLOs") :]
    for setting in ("service", "objective", "window", "sli", "threshold_ms", "operation", "name"):
        assert f"| `{setting}` |" in section, setting
