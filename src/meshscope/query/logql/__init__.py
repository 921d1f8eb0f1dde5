"""A LogQL subset over the LogStore protocol: hand-written lexer and recursive-descent parser
(there is no maintained Python LogQL parser; see docs/adr) and an evaluator.

Supported: stream selectors (=, !=, =~, !~), line filters (|=, !=, |~, !~), `| json`,
`| logfmt`, label filters (=, !=, =~, !~, ==, >, >=, <, <= on strings, numbers and
durations, joined with `and`/`,`/`or` and parentheses), `| line_format "{{.label}}"`,
`| drop`/`| keep` label names, the range aggregations `count_over_time`, `rate`,
`bytes_over_time`, `bytes_rate`, `sum`/`count`/`min`/`max`/`avg` with `by`/`without`,
`vector(n)`, and `+ - * /` between metric queries (Grafana's health check sends
`vector(1)+vector(1)`).
"""

from meshscope.query.logql.ast import LogExpr, MetricExpr, Query
from meshscope.query.logql.parser import LogQLError, parse

__all__ = ["LogExpr", "LogQLError", "MetricExpr", "Query", "parse"]
