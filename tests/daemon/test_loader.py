"""load_listeners: import a directory's listener files, report broken ones, reload afresh."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventbus_cli import EventListener, LoaderError, SimpleEventEmitter, load_listeners
from eventbus_cli.daemon.loader import MODULE_PREFIX, listener_files
from tests.harness import RECORDER, started

REPO_LISTENERS = Path(__file__).resolve().parents[2] / "listeners.d"


def write(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.fixture
def listeners_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "listeners.d"
    write(directory, "b_second.py", """
        from eventbus_cli import listener

        @listener("user_created")
        async def second(email: str) -> None: ...
    """)
    write(directory, "a_first.py", """
        from eventbus_cli import listener
        from _shared import PREFIX

        @listener("user_*", retries=2)
        def first(**kwargs): ...

        not_a_listener = print
    """)
    write(directory, "_shared.py", "PREFIX = 'helpers starting with _ are importable'\n")
    write(directory, "notes.txt", "not python\n")
    return directory


def test_loads_sorted_files_skipping_underscores(listeners_dir: Path) -> None:
    assert [p.name for p in listener_files(listeners_dir)] == ["a_first.py", "b_second.py"]
    loaded = load_listeners(listeners_dir)
    assert [(item.name, item.module) for item in loaded] == [
        ("a_first:first", MODULE_PREFIX + "a_first"),
        ("b_second:second", MODULE_PREFIX + "b_second"),
    ]
    assert loaded[0].retries == 2
    assert str(listeners_dir) not in sys.path  # the directory is on sys.path only while loading


def test_the_repositorys_listeners_load_and_handle_the_seed_events() -> None:
    loaded = {item.name: item for item in load_listeners(REPO_LISTENERS)}
    assert set(loaded) == {
        "welcome:send_welcome_mail",
        "account_mail:send_email_handler",
        "offboarding:send_farewell_email_handler",
        "offboarding:notify_customer_support",
    }

    async def run() -> Any:
        async with SimpleEventEmitter(list(loaded.values())) as emitter:
            emitter.emit("user_created", email="ada@example.com")
            emitter.emit("password_changed", email="ada@example.com", message="changed")
            emitter.emit("user_deleted", email="ada@example.com", reason="moved away")
        return emitter.stats()

    stats = anyio.run(run)
    assert (stats.succeeded, stats.failed) == (5, 0)


@pytest.mark.parametrize(
    ("source", "line", "problem"),
    [
        ("x = 1\ndef broken(:\n", 2, "SyntaxError"),
        ("import os\nraise RuntimeError('no config')\n", 2, "RuntimeError: no config"),
        ("import a_module_that_does_not_exist\n", 1, "ModuleNotFoundError"),
        ("from eventbus_cli import listener\n@listener('bad id')\ndef f(): ...\n", 2,
         "invalid event pattern 'bad id'"),
        ("import sys\nsys.exit(1)\n", 2, "SystemExit: 1"),
        ("from eventbus_cli import listener\n@listener('a', rate='10/fortnight')\n"
         "def f(): ...\n", 2, "rate must be a rate such as \"10/s\""),
        ("from eventbus_cli import listener\n@listener('a', rate='0/s')\ndef f(): ...\n", 2,
         "not '0/s'"),
    ],
)
def test_a_broken_file_is_named_with_its_line(
    listeners_dir: Path, source: str, line: int, problem: str
) -> None:
    broken = write(listeners_dir, "c_broken.py", source)
    before = sys.modules.get(MODULE_PREFIX + "a_first")
    with pytest.raises(LoaderError) as caught:
        load_listeners(listeners_dir)
    assert caught.value.file == broken
    assert caught.value.line == line
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"cannot load listeners from {broken}, line {line}: ")
    # nothing of the failed load stays registered
    assert sys.modules.get(MODULE_PREFIX + "a_first") is before
    assert MODULE_PREFIX + "c_broken" not in sys.modules


def test_an_error_raised_in_an_imported_helper_names_both_places(listeners_dir: Path) -> None:
    write(listeners_dir, "_helper.py", "def setup():\n    raise KeyError('API_KEY')\n")
    broken = write(listeners_dir, "c_uses_helper.py", "import _helper\n_helper.setup()\n")
    with pytest.raises(LoaderError) as caught:
        load_listeners(listeners_dir)
    assert caught.value.file == broken
    assert caught.value.line == 2
    assert "KeyError: 'API_KEY' (in " in str(caught.value)
    assert "_helper.py, line 2)" in str(caught.value)


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="no such directory"):
        load_listeners(tmp_path / "nope")


def test_same_named_functions_in_two_files_both_load_under_their_module(
    listeners_dir: Path,
) -> None:
    write(listeners_dir, "c_again.py", """
        from eventbus_cli import listener

        @listener("order.paid")
        async def second() -> None: ...

        def factory(event):
            @listener(event)
            async def handle() -> None: ...
            return handle

        def other_factory(event):
            @listener(event)
            async def handle() -> None: ...
            return handle

        one = factory("a")
        two = other_factory("b")
    """)
    names = [item.name for item in load_listeners(listeners_dir)]
    assert names == ["a_first:first", "b_second:second", "c_again:second",
                     "c_again:factory.handle", "c_again:other_factory.handle"]


def test_a_true_name_clash_is_an_error_naming_both_places(listeners_dir: Path) -> None:
    path = write(listeners_dir, "c_clash.py", """
        from eventbus_cli import listener

        def factory(event):
            @listener(event)
            async def handle() -> None: ...
            return handle

        one = factory("a")
        two = factory("b")
    """)
    with pytest.raises(LoaderError, match=r"two listeners are named 'c_clash:factory\.handle'"
                       ) as caught:
        load_listeners(listeners_dir)
    assert caught.value.file == path
    assert str(caught.value).count(f"{path}:5") == 2  # both made on line 5: one place, twice
    assert MODULE_PREFIX + "c_clash" not in sys.modules


def test_an_explicit_name_taken_twice_is_an_error(listeners_dir: Path) -> None:
    write(listeners_dir, "c_named.py", """
        from eventbus_cli import listener

        @listener("order.paid", name="b_second:second")
        async def mine() -> None: ...
    """)
    with pytest.raises(LoaderError, match=r"two listeners are named 'b_second:second' \(.*"
                       r"b_second.py:\d+ and .*c_named.py:4\)"):
        load_listeners(listeners_dir)


def test_a_listener_imported_into_two_files_loads_once(listeners_dir: Path) -> None:
    write(listeners_dir, "c_reexport.py", "from eventbus_listeners.b_second import second\n")
    assert [item.name for item in load_listeners(listeners_dir)] == [
        "a_first:first", "b_second:second"]


def test_reload_builds_a_new_set_and_leaves_the_old_one_working(listeners_dir: Path) -> None:
    path = write(listeners_dir, "c_counter.py", """
        from eventbus_cli import listener
        VERSION = 1

        @listener("tick")
        def version() -> int:
            return VERSION
    """)
    old = {item.name.partition(":")[2]: item for item in load_listeners(listeners_dir)}
    path.write_text(path.read_text().replace("VERSION = 1", "VERSION = 2"))
    new = {item.name.partition(":")[2]: item for item in load_listeners(listeners_dir)}
    assert old["version"] is not new["version"]
    assert old["version"]() == 1
    assert new["version"]() == 2
    write(listeners_dir, "_shared.py", "PREFIX = 'changed helpers are imported afresh'\n")
    assert sys.modules[MODULE_PREFIX + "a_first"].PREFIX == "helpers starting with _ are importable"
    load_listeners(listeners_dir)
    assert sys.modules[MODULE_PREFIX + "a_first"].PREFIX == "changed helpers are imported afresh"
    path.write_text("raise ImportError('half-written')\n")
    with pytest.raises(LoaderError):
        load_listeners(listeners_dir)
    assert sys.modules[MODULE_PREFIX + "c_counter"].VERSION == 2  # the last good load stays
    assert new["version"]() == 2


def test_litestar_listeners_load_and_report_their_failures(listeners_dir: Path) -> None:
    pytest.importorskip("litestar", reason="litestar comes with the bench extra")
    write(listeners_dir, "c_litestar.py", """
        from litestar.events import listener

        RECEIVED = []

        @listener("user_created")
        async def litestar_async(email: str) -> None:
            RECEIVED.append(email)

        @listener("user_deleted")
        def litestar_sync(email: str) -> None:
            raise RuntimeError("from a litestar listener")
    """)
    loaded = {item.name.partition(":")[2]: item for item in load_listeners(listeners_dir)}
    assert isinstance(loaded["litestar_async"], EventListener)
    assert loaded["litestar_async"].is_async
    assert not loaded["litestar_sync"].is_async

    async def run() -> Any:
        async with SimpleEventEmitter(list(loaded.values())) as emitter:
            emitter.emit("user_created", email="ada@example.com")
            emitter.emit("user_deleted", email="ada@example.com")
        return emitter

    emitter = anyio.run(run)
    assert sys.modules[MODULE_PREFIX + "c_litestar"].RECEIVED == ["ada@example.com"]
    [failed] = emitter.failed
    assert failed.error == "RuntimeError: from a litestar listener"


def test_listener_modules_import_the_projects_own_package_and_python_path(
        short_dir: Path) -> None:
    """The config file's folder is on the import path (``import shopapp`` from the project's
    root), and so is each ``[daemon] python_path`` folder, relative to the config file."""
    (short_dir / "shopapp").mkdir()
    (short_dir / "shopapp" / "__init__.py").write_text("GREETING = 'from the app'\n")
    (short_dir / "vendor").mkdir()
    (short_dir / "vendor" / "vendored_helper.py").write_text("LOUD = True\n")
    listeners = RECORDER + (
        "\nfrom shopapp import GREETING\nimport vendored_helper\n\n"
        "@listener('greet')\ndef greet(**kwargs):\n    assert GREETING and vendored_helper.LOUD\n")
    for daemon in started(short_dir, listeners=listeners,
                          config='[daemon]\npython_path = ["vendor"]\n'):
        events = {entry["event"] for entry in daemon.json("events")}
        assert "greet" in events
        assert daemon.cli("emit", "greet", "--wait").returncode == 0
