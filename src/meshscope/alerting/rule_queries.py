"""How alerting rules read: a PromQL expression through the PromQL engine over the metric
store, a LogQL metric query through the LogQL evaluator over the logs, each as an instant
query at the evaluation time, as the group's tenant, under the query budget (`query:`
settings: a rule cannot run longer or load more than a request could)."""

from __future__ import annotations

from meshscope.alerting.rule_files import Language, RuleGroup
from meshscope.alerting.rules import Query, Series
from meshscope.auth.principal import DEFAULT_TENANT
from meshscope.query import budget
from meshscope.query.budget import Budget, QueryLimits
from meshscope.query.logql import LogExpr
from meshscope.query.logql import parse as parse_logql
from meshscope.query.logql.metrics import Steps, evaluate
from meshscope.query.logql.select import Scan
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.query.promql.values import Matrix, Scalar, String, Vector
from meshscope.store.base import Storage
from meshscope.tenancy.context import as_tenants


def rule_queries(storage: Storage, limits: QueryLimits) -> dict[Language, Query]:
    engine = Engine(MetricStoreQueryable(storage.metrics))

    def promql(group: RuleGroup, expr: str, now_ns: int) -> Series:
        with as_tenants(group.tenant or DEFAULT_TENANT), budget.running(Budget(limits)):
            value = engine.instant(expr, now_ns // 10**6)
        if isinstance(value, Vector):
            return [(dict(s.labels), s.v) for s in value.samples]
        if isinstance(value, Scalar):
            return [({}, value.v)]
        kind = "string" if isinstance(value, String) else "range vector"
        assert isinstance(value, String | Matrix)
        raise ValueError(f"rule expression must be an instant vector or scalar, not a {kind}")

    def logql(group: RuleGroup, expr: str, now_ns: int) -> Series:
        query = parse_logql(expr)
        assert not isinstance(query, LogExpr)  # rule files refuse log queries
        with as_tenants(group.tenant or DEFAULT_TENANT), budget.running(Budget(limits)):
            matrix = evaluate(storage.logs, query, Steps(now_ns, now_ns, 1), Scan())
        return [(dict(key), points[0]) for key, points in matrix.items() if 0 in points]

    return {"promql": promql, "logql": logql}
