"""Binary operators over Blocks (every step at once), with the semantics of `binary.py`:
arithmetic and comparisons (filters or `bool`), vector matching with on/ignoring and
group_left/group_right, and the set operators."""

from __future__ import annotations

import numpy as np

from meshscope.model.metrics import Labels
from meshscope.query.promql.binary import COMPARISONS, Matching, _result_labels, signature
from meshscope.query.promql.block import Block, Floats, Mask, unique
from meshscope.query.promql.values import PromQLError, drop_name, labels_text

_ARITHMETIC = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,  # Go's math.Mod: NaN for x % 0 and inf % y, x for x % inf
    "^": np.power,
    "atan2": np.arctan2,
}
_COMPARE = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}


def apply(op: str, a: Floats, b: Floats) -> tuple[Floats, Mask | None]:
    """(result, keep): comparisons keep `a` where the test passed; None keeps everything."""
    with np.errstate(all="ignore"):
        if op in _ARITHMETIC:
            return np.asarray(_ARITHMETIC[op](a, b), np.float64), None
        if op in _COMPARE:
            keep = np.asarray(_COMPARE[op](a, b), np.bool_)
            return np.broadcast_to(np.asarray(a, np.float64), keep.shape), keep
    raise PromQLError(f"operator {op!r} not allowed here")


def scalar_scalar(op: str, a: Floats, b: Floats) -> Floats:
    result, keep = apply(op, a, b)
    if keep is not None:
        return keep.astype(np.float64)
    return result


def vector_scalar(op: str, block: Block, scalar: Floats, swap: bool, return_bool: bool) -> Block:
    left, right = (scalar[None, :], block.values) if swap else (block.values, scalar[None, :])
    result, keep = apply(op, left, right)
    if keep is not None and swap:
        result = block.values
    present = block.present
    if return_bool and keep is not None:
        result = np.broadcast_to(keep, block.values.shape).astype(np.float64)
    elif keep is not None:
        present = present & keep
    drop = op not in COMPARISONS or return_bool
    labels = [drop_name(lb) for lb in block.labels] if drop else block.labels
    return unique(Block(labels, np.broadcast_to(result, block.values.shape).copy(), present))


def _groups(block: Block, matching: Matching) -> dict[Labels, list[int]]:
    out: dict[Labels, list[int]] = {}
    for index, labels in enumerate(block.labels):
        out.setdefault(signature(labels, matching), []).append(index)
    return out


def _any(block: Block, rows: list[int]) -> Mask:
    return np.asarray(block.present[rows].any(axis=0), np.bool_)


def set_operation(op: str, lhs: Block, rhs: Block, matching: Matching) -> Block:
    right = {sig: _any(rhs, rows) for sig, rows in _groups(rhs, matching).items()}
    if op in ("and", "unless"):
        present = np.zeros_like(lhs.present)
        for index, labels in enumerate(lhs.labels):
            found = right.get(signature(labels, matching))
            if op == "and":
                if found is not None:
                    present[index] = lhs.present[index] & found
            else:
                present[index] = (
                    lhs.present[index] if found is None else lhs.present[index] & ~found
                )
        return Block(lhs.labels, lhs.values, present)
    left = {sig: _any(lhs, rows) for sig, rows in _groups(lhs, matching).items()}
    extra = rhs.present.copy()
    for index, labels in enumerate(rhs.labels):
        found = left.get(signature(labels, matching))
        if found is not None:
            extra[index] &= ~found
    return Block(
        lhs.labels + rhs.labels,
        np.concatenate((lhs.values, rhs.values)),
        np.concatenate((lhs.present, extra)),
    )


def vector_vector(op: str, lhs: Block, rhs: Block, matching: Matching, return_bool: bool) -> Block:
    many_right = matching.card == "one-to-many"
    if many_right:
        lhs, rhs = rhs, lhs
    right = _groups(rhs, matching)
    for sig, rows in right.items():
        if len(rows) > 1 and (rhs.present[rows].sum(axis=0) > 1).any():
            side = "left" if many_right else "right"
            clash = [i for i in rows if rhs.present[i].any()][:2]
            raise PromQLError(
                f"found duplicate series for the match group {labels_text(sig)} on the {side} "
                f"hand-side of the operation: [{labels_text(rhs.labels[clash[0]])}, "
                f"{labels_text(rhs.labels[clash[-1]])}];many-to-many matching not allowed: "
                "matching labels must be unique on one side"
            )
    labels: list[Labels] = []
    keys: list[tuple[Labels, Labels]] = []
    values: list[Floats] = []
    present: list[Mask] = []
    for index, left_labels in enumerate(lhs.labels):
        sig = signature(left_labels, matching)
        for other in right.get(sig, ()):
            both = lhs.present[index] & rhs.present[other]
            if not both.any():
                continue
            a, b = lhs.values[index], rhs.values[other]
            if many_right:
                a, b = b, a
            result, keep = apply(op, a, b)
            if return_bool:
                result = np.ones_like(a) if keep is None else keep.astype(np.float64)
            elif keep is not None:
                both = both & keep
            metric = _result_labels(left_labels, rhs.labels[other], op, matching)
            if return_bool:
                metric = drop_name(metric)
            labels.append(metric)
            keys.append((sig, () if matching.card == "one-to-one" else metric))
            values.append(np.array(result, np.float64))
            present.append(both)
    if not labels:
        return Block.empty(lhs.values.shape[1])
    out = Block(labels, np.stack(values), np.stack(present))
    _check_matches(out, keys, matching)
    return unique(out)


def _check_matches(out: Block, keys: list[tuple[Labels, Labels]], matching: Matching) -> None:
    groups: dict[tuple[Labels, Labels], list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    for rows in groups.values():
        if len(rows) > 1 and (out.present[rows].sum(axis=0) > 1).any():
            if matching.card == "one-to-one":
                raise PromQLError(
                    "multiple matches for labels: many-to-one matching must be explicit "
                    "(group_left/group_right)"
                )
            raise PromQLError(
                "multiple matches for labels: grouping labels must ensure unique matches"
            )
