"""Command-line values for emit: text, :=JSON, @file."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus_cli.cli.values import parse_arg, parse_kw
from eventbus_cli.errors import ArgumentError
from eventbus_cli.protocol.event import decode_event


def test_arg_values() -> None:
    assert parse_arg("5") == "5"
    assert parse_arg(":=5") == 5
    assert parse_arg(':="5"') == "5"
    assert parse_arg(":=[1, {\"a\": true}]") == [1, {"a": True}]
    assert parse_arg("") == ""


def test_kw_values() -> None:
    assert parse_kw("email=x") == ("email", "x")
    assert parse_kw("count:=3") == ("count", 3)
    assert parse_kw("flag:=true") == ("flag", True)
    assert parse_kw("expr=a=b") == ("expr", "a=b")
    assert parse_kw("empty=") == ("empty", "")


def test_kw_keys_follow_the_rule_of_events_files() -> None:
    # What an events file or the protocol takes, --kw takes: such keys reach **kwargs.
    assert parse_kw("1bad=x") == ("1bad", "x")
    assert parse_kw("a-b:=4") == ("a-b", 4)
    assert decode_event('{"event": "e", "kwargs": {"1bad": "x", "a-b": 4}}').kwargs == {
        "1bad": "x", "a-b": 4}


def test_values_from_files(tmp_path: Path) -> None:
    (tmp_path / "body.txt").write_text("hi\n")
    (tmp_path / "data.json").write_text('{"a": [1]}')
    assert parse_kw(f"body=@{tmp_path / 'body.txt'}") == ("body", "hi\n")
    assert parse_kw(f"data:=@{tmp_path / 'data.json'}") == ("data", {"a": [1]})
    assert parse_arg(f"@{tmp_path / 'body.txt'}") == "hi\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("email", "expected KEY=VALUE"),
        ("n:=three", "not valid JSON"),
        ("=x", "the key before '=' is empty"),
        (":=1", "the key before '=' is empty"),
        ("body=@/no/such/file", "cannot read the file"),
    ],
)
def test_bad_kw_names_the_argument(text: str, words: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        parse_kw(text)
    assert caught.value.option == "--kw"
    assert words in str(caught.value)
    assert text in str(caught.value)
