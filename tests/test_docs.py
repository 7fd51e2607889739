"""The documentation site's reference pages are what the code says: each is exactly what
``docs/gen_reference.py`` writes, and names every command, option, config key, op and
error code there is; every page of ``docs/`` is in the site's navigation."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer

from eventbus_cli import config as config_module
from eventbus_cli.cli.app import load_commands
from eventbus_cli.errors import ErrorCode
from eventbus_cli.protocol.ops import OPS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    written: dict[str, str] = _generator().pages()
    return written


def test_each_reference_page_is_what_the_code_writes(pages: dict[str, str]) -> None:
    for name, text in pages.items():
        found = (DOCS / "reference" / f"{name}.md").read_text()
        assert found == text, (f"docs/reference/{name}.md differs from the code: run "
                               "`python docs/gen_reference.py`")


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_every_command_and_option_is_in_the_reference(pages: dict[str, str]) -> None:
    page = pages["cli"]
    commands = _commands(typer.main.get_command(load_commands()))
    assert len(commands) >= 25
    for path, command in commands:
        if path:
            assert f"## eventbus {' '.join(path)}\n" in page, path
        section = page.split(f"## eventbus {' '.join(path)}\n" if path else
                             "## Global options\n", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden and param.name != "help":
                assert f"`{param.opts[0]}`" in section, (path, param.opts)


def test_every_config_key_is_in_the_reference(pages: dict[str, str]) -> None:
    page = pages["config"]
    for table, cls in (("daemon", config_module.DaemonConfig),
                       ("delivery", config_module.DeliveryConfig),
                       ("journal", config_module.JournalConfig),
                       ("backend", config_module.BackendConfig),
                       ("metrics", config_module.MetricsConfig)):
        section = page.split(f"## [{table}]\n", 1)[1].split("\n## ", 1)[0]
        for field in dataclasses.fields(cls):
            assert re.search(rf"^\| `{field.name}` \|", section, re.MULTILINE), (table, field)
    for key in [*config_module.DeliveryOptions._fields, *config_module._SCHEDULE_KEYS]:
        assert f"| `{key}` |" in page, key


def test_every_op_and_its_fields_are_in_the_reference(pages: dict[str, str]) -> None:
    page = pages["protocol"]
    for op, spec in OPS.items():
        section = page.split(f"## `{op}`\n", 1)[1].split("\n## ", 1)[0]
        assert f"`{spec.returns}`" in section
        for field in spec.fields:
            assert f"| `{field.name}` |" in section, (op, field.name)


def test_every_error_code_is_in_the_reference_with_its_meaning(pages: dict[str, str]) -> None:
    codes = [value for name, value in vars(ErrorCode).items()
             if not name.startswith("_") and isinstance(value, str)]
    for code in codes:
        assert re.search(rf"^\| `{code}` \| \S", pages["errors"], re.MULTILINE), code


def test_every_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]
    for page in DOCS.rglob("*.md"):
        assert str(page.relative_to(DOCS)) in nav, page
