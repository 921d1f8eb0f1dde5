"""`| pattern`'s matcher against lines built from a pattern: the captures come back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.query.logql.line_pattern import Capture, parse_pattern

_LITERALS = st.text(alphabet=' -[]"=:/x', min_size=1, max_size=4)
_VALUES = st.text(alphabet="abc123._", max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_line_made_from_a_pattern_gives_its_values_back(data: st.DataObject) -> None:
    """Captures alternate with literals (maybe a literal first); values never contain a
    literal's characters, so each capture ends where its literal starts."""
    count = data.draw(st.integers(1, 5))
    leading = data.draw(st.booleans())
    text, line, want = "", "", []
    if leading:
        literal = data.draw(_LITERALS)
        text, line = literal, literal
    for index in range(count):
        name = data.draw(st.sampled_from([f"c{index}", "_"]))
        value = data.draw(_VALUES)
        text += f"<{name}>"
        line += value
        if name != "_":
            want.append((name, value))
        if index + 1 < count or data.draw(st.booleans()):
            literal = data.draw(_LITERALS)
            text, line = text + literal, line + literal
    if not want:  # no named capture: refused
        return
    pattern = parse_pattern(text)
    if line:
        assert pattern.matches(line) == want
    assert pattern.names == tuple(name for name, _ in want)
    assert all(isinstance(p, Capture) or p for p in pattern.parts)
