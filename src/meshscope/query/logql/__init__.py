"""A LogQL subset over the LogStore protocol: hand-written lexer and recursive-descent parser
(there is no maintained Python LogQL parser; see docs/adr) and an evaluator.

Supported: stream selectors (=, !=, =~, !~), line filters (|=, !=, |~, !~), `| json` and
`| logfmt` (every field, or extractions `a="path"`), `| regexp`, `| pattern`, `| unpack`,
`| decolorize`, label filters (=, !=, =~, !~, ==, >, >=,
<, <= on strings, numbers and durations, joined with `and`/`,`/`or` and parentheses),
`| line_format "{{.label}}"`, `| label_format`, `| drop`/`| keep` label names, the range
aggregations `count_over_time`, `rate`, `bytes_over_time`, `bytes_rate`, `absent_over_time`
and, over `| unwrap`ped values, `sum`/`avg`/`min`/`max`/`first`/`last`/`stddev`/`stdvar`/
`quantile_over_time`, `rate` and `rate_counter` (with `by`/`without` where Loki allows it);
`sum`/`count`/`min`/`max`/`avg`/`stddev`/`stdvar`/`topk`/`bottomk` with `by`/`without`,
`vector(n)`, and `+ - * / % ^`, comparisons (with `bool`) and `and`/`or`/`unless` between
metric queries (Grafana's health check sends `vector(1)+vector(1)`).
"""

from meshscope.query.logql.ast import LogExpr, MetricExpr, Query
from meshscope.query.logql.parser import LogQLError, parse

__all__ = ["LogExpr", "LogQLError", "MetricExpr", "Query", "parse"]
