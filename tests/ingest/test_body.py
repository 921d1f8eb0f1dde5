"""Bounded decompression and Content-Encoding parsing, without a server."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest

from meshscope.ingest.body import BodyError, content_encoding, decompress

LIMIT = 1024 * 1024
DATA = b"meshscope " * 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "identity"),
        ("", "identity"),
        (" GZIP ", "gzip"),
        ("x-gzip", "gzip"),
        ("deflate", "deflate"),
    ],
)
def test_content_encodings(header: str | None, expected: str) -> None:
    assert content_encoding(header) == expected


@pytest.mark.parametrize("header", ["br", "zstd", "gzip, br", "snappy"])
def test_unknown_encodings_are_415(header: str) -> None:
    with pytest.raises(BodyError) as raised:
        content_encoding(header)
    assert raised.value.status == 415
    assert "gzip, deflate, identity" in raised.value.message


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("identity", DATA),
        ("gzip", gzip.compress(DATA)),
        ("gzip", gzip.compress(DATA[:5000]) + gzip.compress(DATA[5000:])),  # two members
        ("deflate", zlib.compress(DATA)),  # RFC 9110 deflate: zlib-wrapped
        ("deflate", zlib.compress(DATA, wbits=-15)),  # raw deflate, as some clients send
    ],
    ids=["identity", "gzip", "gzip-members", "zlib", "raw-deflate"],
)
def test_round_trips(encoding: str, body: bytes) -> None:
    assert decompress(body, encoding, LIMIT) == DATA


def test_exactly_the_limit_is_accepted() -> None:
    body = bytes(LIMIT)
    assert decompress(gzip.compress(body), "gzip", LIMIT) == body
    assert decompress(body, "identity", LIMIT) == body


@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate"])
def test_one_byte_over_the_limit_is_413(encoding: str) -> None:
    body = bytes(LIMIT + 1)
    encoded = {"identity": body, "gzip": gzip.compress(body), "deflate": zlib.compress(body)}
    with pytest.raises(BodyError) as raised:
        decompress(encoded[encoding], encoding, LIMIT)
    assert raised.value.status == 413


def test_a_bomb_never_allocates_much_more_than_the_limit() -> None:
    limit = 8 * LIMIT
    bomb = gzip.compress(bytes(256 * LIMIT), 9) * 4  # 1 GiB of zeros in four ~250 KB members
    tracemalloc.start()
    try:
        with pytest.raises(BodyError) as raised:
            decompress(bomb, "gzip", limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raised.value.status == 413
    assert peak < limit + 2 * LIMIT


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("gzip", b"not gzip", "invalid gzip body"),
        ("gzip", gzip.compress(DATA)[:-10], "truncated"),
        ("gzip", gzip.compress(DATA)[:5], "truncated"),
        ("gzip", gzip.compress(DATA) + b"junk", "trailing data"),
        ("gzip", b"", "truncated"),
        ("deflate", b"\xff\xfe\xfd", "invalid deflate body"),
        ("deflate", zlib.compress(DATA)[:-3], "truncated"),
    ],
)
def test_corrupt_bodies_are_400(encoding: str, body: bytes, message: str) -> None:
    with pytest.raises(BodyError) as raised:
        decompress(body, encoding, LIMIT)
    assert raised.value.status == 400
    assert message in raised.value.message
