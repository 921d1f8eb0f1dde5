"""How detected fields and labels type a value: Go's parsers as Loki calls them (strconv,
time.ParseDuration, go-humanize, google/uuid), read as Go reads them, not as Python would."""

from __future__ import annotations

import pytest

from meshscope.api.loki_detected import as_written, field_type, rejected
from meshscope.go_parsers import format_bytes, is_float, is_uuid, parse_bytes


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("42", "int"), ("-7", "int"), ("+0", "int"), ("9223372036854775807", "int"),
        ("9223372036854775808", "float"),  # past int64: ParseInt fails, ParseFloat reads it
        ("1.5", "float"), ("1e3", "float"), (".5", "float"), ("5.", "float"),
        ("inf", "float"), ("-Infinity", "float"), ("NaN", "float"), ("1_000.5", "float"),
        ("0x1p-2", "float"),
        ("true", "boolean"), ("T", "boolean"), ("FALSE", "boolean"), ("f", "boolean"),
        ("250ms", "duration"), ("1h2m", "duration"), ("-1.5s", "duration"),
        ("10MiB", "bytes"), ("3 kB", "bytes"), ("1,024 kb", "bytes"), ("5 B", "bytes"),
        ("1e", "bytes"),  # ParseFloat fails, ParseBytes reads 1 EB
        ("1d", "string"), ("1e400", "string"), ("+nan", "string"), ("0x10", "string"),
        ("1_", "string"), (" 1", "string"), ("\u0661\u0662", "string"), ("yes", "string"),
        ("", "string"),
    ],
)  # fmt: skip
def test_field_types_are_gos(value: str, kind: str) -> None:
    assert field_type(value) == kind


def test_go_humanize_bytes_both_ways() -> None:
    assert parse_bytes("42 MB") == 42_000_000 and parse_bytes("42 mib") == 44_040_192
    assert parse_bytes("1.5KiB") == 1536 and parse_bytes("7 ") == 7
    for bad in ("", "MB", "1.2.3 B", "1 XB", " 1 B", "\u0661 KB", "99999 EB"):
        assert parse_bytes(bad) is None, bad
    assert [format_bytes(n) for n in (9, 10, 1500, 82_854_982, 10_485_760, 10**18)] == [
        "9 B", "10 B", "1.5 kB", "83 MB", "10 MB", "1.0 EB",
    ]  # fmt: skip
    assert [as_written(v) for v in ("10MiB", "3 kB", "5m", "12", "7 b ")] == [
        "10MB", "3.0kB", "5m", "12", "7 b ",
    ]  # fmt: skip


def test_uuids_as_google_uuid_parses_them() -> None:
    uuid = "123e4567-e89b-12d3-a456-426614174000"
    for good in (uuid, uuid.upper(), f"urn:UUID:{uuid}", f"{{{uuid}}}", f"x{uuid}y",
                 uuid.replace("-", "")):  # fmt: skip
        assert is_uuid(good), good
    for bad in (uuid[:-1], uuid.replace("-", "_"), uuid[:-1] + "g", f"urn:uid::{uuid}"):
        assert not is_uuid(bad), bad
    assert is_float("1_23.50_0_0e+1_2") and not is_float("1__2")


@pytest.mark.parametrize(
    ("values", "dropped"),
    [
        ([], True), (["0", "1"], False), (["1"], False), (["0", "2"], True),
        (["0", "1", "1.5"], True), (["a"], False), (["1", "a"], False),
        (["123e4567-e89b-12d3-a456-426614174000", "7"], True),
    ],
)  # fmt: skip
def test_labels_of_ids_only_are_rejected(values: list[str], dropped: bool) -> None:
    assert rejected(values) is dropped
