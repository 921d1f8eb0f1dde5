"""The sidecar's tracestate entry: first, replacing an older one, the caller's entries kept;
a SERVER span is behind a sidecar only when the entry names its own parent."""

from __future__ import annotations

from meshscope.model.sidecar_mark import behind_sidecar, sidecar_trace_state
from meshscope.model.spans import SpanKind

SPAN = "0bab262c5160c1d7"


def test_the_entry_goes_first_and_replaces_an_older_one() -> None:
    assert sidecar_trace_state("", SPAN) == f"meshscope={SPAN}"
    incoming = "a=1, meshscope=00000000000000aa ,b=2"
    assert sidecar_trace_state(incoming, SPAN) == f"meshscope={SPAN},a=1,b=2"
    many = ",".join(f"k{i}=v" for i in range(40))
    assert len(sidecar_trace_state(many, SPAN).split(",")) == 32  # W3C's limit


def test_only_a_server_span_whose_parent_is_named_is_behind_a_sidecar() -> None:
    state = f"a=1,meshscope={SPAN}"
    assert behind_sidecar(SpanKind.SERVER, SPAN, state)
    assert not behind_sidecar(SpanKind.SERVER, "00000000000000aa", state)  # further down
    assert not behind_sidecar(SpanKind.CLIENT, SPAN, state)
    assert not behind_sidecar(SpanKind.SERVER, "", f"meshscope={SPAN}")
    assert not behind_sidecar(SpanKind.SERVER, SPAN, f"xmeshscope={SPAN}")
