"""Hostile and half-written LogQL (as Grafana's query builder and autocompletion send it):
any text parses or is refused with a LogQLError (or a too-deep refusal), never another
exception; a query that parses runs over known lines without one, or fails as Loki would
(a pipeline error is a LogQLError too)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.ingest.loki import decode_loki_json
from meshscope.query.budget import QueryTooComplexError
from meshscope.query.logql import LogExpr, LogQLError, parse
from meshscope.query.logql.metrics import Steps, evaluate
from meshscope.query.logql.select import Scan, entries
from meshscope.store.memory import MemoryStorage
from tests.loki_data import LINES, T0, S, json_push

_STORE = MemoryStorage()
_STORE.logs.write_logs(decode_loki_json(json_push(LINES[:60])).batch.logs)
_TOKENS = ['{service_name="pay"}', '{env=~".+"}', "|", "|=", '"status="', "logfmt", "json",
           "unwrap", "status", "duration", "(", ")", "[5m]", "[1s]", "by", "without", ",",
           "sum_over_time", "quantile_over_time", "0.5", "2", "rate_counter", "absent_over_time",
           "avg_over_time", "count_over_time", "rate", "topk", "bottomk", "stddev", "sum",
           "bytes", "__error__", '=""', "!=", ">", "500", "drop", "keep", "label_format",
           "line_format", '"{{.status}}"', "x=status", "+", "*", "/", "vector",
           '"(a+)+$"']  # fmt: skip


_STAGES = ['|= "status="', '!= "x"', '|~ "(a+)+$"', "| logfmt", "| json", "| drop size",
           '| status >= 500', '| __error__=""', '| line_format "{{.status}}"',
           "| label_format x=status", "| keep status, service_name", '| json s="a[0].b"',
           '| logfmt s="status", duration', '| pattern "<a> <_>=<b>"', "| unpack",
           '| regexp "status=(?P<s>[0-9]+)"', "| decolorize"]  # fmt: skip
_FUNCS = ["count_over_time", "rate", "bytes_rate", "absent_over_time", "sum_over_time",
          "avg_over_time", "quantile_over_time", "rate_counter", "stddev_over_time",
          "first_over_time", "max_over_time"]  # fmt: skip
_UNWRAPS = ["", "| unwrap status", "| unwrap duration(duration)", "| unwrap bytes(status)",
            '| unwrap status | __error__=""', "| unwrap msg"]  # fmt: skip


@st.composite
def _queries(draw: st.DrawFn) -> str:
    """Plausible queries from the grammar's pieces, valid or nearly, then maybe mutated."""
    log = draw(st.sampled_from(['{service_name="pay"}', '{env=~".+"}']))
    log += " " + " ".join(draw(st.lists(st.sampled_from(_STAGES), max_size=4)))
    if draw(st.booleans()):
        func = draw(st.sampled_from(_FUNCS))
        param = "0.9, " if func == "quantile_over_time" else ""
        offset = draw(st.sampled_from(["", " offset 1h", " offset 0s"]))
        text = f"{func}({param}{log} {draw(st.sampled_from(_UNWRAPS))} [5m]{offset})"
        text += draw(st.sampled_from(["", " by (service_name)", " without (msg)"]))
        wrap = draw(st.sampled_from(["{}", "sum by (level) ({})", "topk(2, {})", "stddev({})",
                                     "{} * 2", "bottomk(1, {}) / {}"]))  # fmt: skip
        text = wrap.format(text, text)
    else:
        text = log
    tokens = text.split(" ")
    for _ in range(draw(st.integers(0, 2))):  # drop or repeat a piece
        at = draw(st.integers(0, len(tokens) - 1))
        tokens[at : at + 1] = [] if draw(st.booleans()) else [tokens[at]] * 2
    return " ".join(tokens)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), _queries(),
                 st.lists(st.sampled_from(_TOKENS), max_size=25).map(" ".join)))  # fmt: skip
def test_any_text_parses_or_is_refused_and_a_parsed_query_runs(text: str) -> None:
    try:
        query = parse(text)
    except (LogQLError, QueryTooComplexError):
        return
    try:
        if isinstance(query, LogExpr):
            list(entries(_STORE.logs, query, T0, T0 + 600 * S, Scan(), limit=50))
        else:
            evaluate(_STORE.logs, query, Steps(T0 + 60 * S, T0 + 600 * S, 60 * S), Scan())
    except LogQLError as error:
        if not str(error).startswith("pipeline error"):
            raise
