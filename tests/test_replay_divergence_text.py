"""A divergence shows where the recorded and the replayed values first differ: a
prompt of thousands of characters that changed near its end must not print two
identical beginnings."""

from __future__ import annotations

from flock_es.runtime.replay_report import SHOWN, Divergence, first_difference


def test_a_long_prompt_is_shown_from_its_first_difference() -> None:
    head = "You are the agent 'world_analyst'.\n" + "schema " * 300
    recorded = [{"role": "system", "content": head + "audience: str"}, {"role": "user"}]
    replayed = [{"role": "system", "content": head + "audience: str = 'all'"}, {"role": "user"}]
    where, expected, actual = first_difference(recorded, replayed)
    assert where == f"[0].content, first differs at character {len(head) + 13:,}"
    assert expected.startswith("…") and expected.endswith("audience: str")
    assert actual.endswith("audience: str = 'all'")
    assert len(expected) <= SHOWN + 2


def test_short_values_are_shown_whole_on_one_line() -> None:
    assert first_difference({"a": 1, "b": "x\ny"}, {"a": 1, "b": "x\nz"}) == ("b", "x\\ny", "x\\nz")
    assert first_difference([1, 2], [1, 2, 3]) == ("", "[1, 2]", "[1, 2, 3]")
    assert first_difference({"a": 1}, {"b": 1}) == ("", '{"a": 1}', '{"b": 1}')


def test_the_report_names_the_place() -> None:
    text = str(Divergence(20, "prompt of model call 0", ["a" * 500 + "b"], ["a" * 500 + "c"], "w"))
    lines = text.splitlines()
    assert lines[0] == "diverged at seq 20 (w): prompt of model call 0"
    assert lines[1] == "  where: [0], first differs at character 500"
    assert lines[2].endswith("ab") and lines[3].endswith("ac")
