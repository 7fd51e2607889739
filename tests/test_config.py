"""Config: TOML in and out, checked keys and types, default paths, environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventbus_cli import Config, ConfigError, load_config
from eventbus_cli.config import (
    DaemonConfig,
    DeliveryConfig,
    JournalConfig,
    apply_environment,
    default_socket_path,
)

FULL = """
[daemon]
socket = "/run/user/1000/eventbus.sock"
listeners_dir = "listeners.d"
queue_size = 500
concurrency = 8
max_message_bytes = 65536
shutdown_timeout = 5
log_level = "DEBUG"
allow_uids = [1001]
allow_gids = [50, 51]

[journal]
path = "state/eventbus.db"

[delivery]
retries = 2
backoff = 1
timeout = 15.5
keep_failed = 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "eventbus.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_every_key_and_resolves_paths_against_the_files_folder(tmp_path: Path) -> None:
    config = Config.from_toml(write(tmp_path, FULL))
    assert config.daemon == DaemonConfig(
        socket=Path("/run/user/1000/eventbus.sock"),
        listeners_dir=tmp_path / "listeners.d",
        queue_size=500,
        concurrency=8,
        max_message_bytes=65536,
        shutdown_timeout=5.0,
        log_level="debug",
        allow_uids=(1001,),
        allow_gids=(50, 51),
    )
    assert config.journal == JournalConfig(path=tmp_path / "state" / "eventbus.db")
    assert config.delivery == DeliveryConfig(retries=2, backoff=1.0, timeout=15.5, keep_failed=10)
    assert config.delivery.options().timeout == 15.5
    assert config.path == tmp_path / "eventbus.toml"


def test_an_empty_file_gives_the_defaults_and_no_journal(tmp_path: Path) -> None:
    config = Config.from_toml(write(tmp_path, ""))
    assert config.daemon.queue_size == 10_000
    assert config.daemon.concurrency == 64
    assert config.daemon.socket is None
    assert config.journal is None
    assert config.delivery == DeliveryConfig()


def test_to_toml_round_trips_and_writes_paths_relative(tmp_path: Path) -> None:
    config = Config.from_toml(write(tmp_path, FULL))
    text = config.to_toml()
    assert 'listeners_dir = "listeners.d"' in text
    assert 'path = "state/eventbus.db"' in text
    again = Config.from_toml(write(tmp_path, text))
    assert again == config


def test_the_default_config_writes_no_socket_so_the_default_is_decided_at_start() -> None:
    assert "socket" not in Config().to_toml()


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[daemon]\nqueue_siz = 5\n", "daemon.queue_siz", "unknown key (did you mean queue_size?)"),
        ("[deamon]\n", "deamon", "unknown section; did you mean [daemon]?"),
        ("[schedules]\nname = \"x\"\n", "schedules", "did you mean [[schedule]]?"),
        ("daemon = 3\n", "daemon", "must be a table"),
        ('[daemon]\nqueue_size = "10"\n', "daemon.queue_size", "expected a whole number"),
        ("[daemon]\nqueue_size = 0\n", "daemon.queue_size", "expected a whole number >= 1"),
        ("[daemon]\nconcurrency = 2.5\n", "daemon.concurrency", "expected a whole number"),
        ("[daemon]\nconcurrency = true\n", "daemon.concurrency", "expected a whole number"),
        ('[daemon]\nlog_level = "loud"\n', "daemon.log_level", "expected one of debug, info"),
        ("[daemon]\nlog_level = 3\n", "daemon.log_level", "expected a string"),
        ("[daemon]\nsocket = 3\n", "daemon.socket", "expected a path"),
        ('[daemon]\nallow_uids = ["root"]\n', "daemon.allow_uids", "list of whole numbers"),
        ("[delivery]\nbackoff = -1\n", "delivery.backoff", "expected a number >= 0"),
        ("[delivery]\ntimeout = 0\n", "delivery.timeout", "expected a number >= 0.001"),
        ('[delivery]\ntimeout = "soon"\n', "delivery.timeout", "expected a number"),
        ("[journal]\npath = 1\n", "journal.path", "expected a path"),
        ("[journal]\nfile = 'x.db'\n", "journal.file", "unknown key; [journal] takes path"),
        ('[backend]\nurl = "redis://h:99999/0"\n', "backend.url", "port from 1 to 65535"),
        ('[backend]\nurl = "redis://h:6379/zero"\n', "backend.url", "a database number"),
        ('[backend]\nurl = "redis://h:x/0"\n', "backend.url", "port from 1 to 65535"),
        ('[metrics]\nlisten = "127.0.0.1:\uff19\uff10"\n', "metrics.listen",
         "a port from 1 to 65535"),
    ],
)
def test_bad_keys_and_values_name_the_key_and_the_file(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Config.from_toml(path)
    assert caught.value.key == key
    assert caught.value.file == path
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[listeners."app:hook"]\nrate = "10/fortnight"\n', 'listeners."app:hook".rate',
         'a rate such as "10/s"'),
        ('[listeners."app:hook"]\nrate = "0/s"\n', 'listeners."app:hook".rate', "not '0/s'"),
        ('[listeners."app:hook"]\nspeed = 1\n', 'listeners."app:hook".speed', "takes retries"),
        ('[listeners."app:hook"]\nretries = -1\n', 'listeners."app:hook".retries', ">= 0"),
        ("[listeners]\nrate = 3\n", "listeners", 'each written [listeners."NAME"]'),
    ],
)
def test_a_listeners_table_is_checked_as_its_decorator(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Config.from_toml(path)
    assert caught.value.key == key
    assert problem in str(caught.value)


def test_a_listeners_table_wins_over_the_decorator(tmp_path: Path) -> None:
    from eventbus_cli import listener
    from eventbus_cli.bus.routing import ListenerSet
    from eventbus_cli.config import DeliveryOptions

    @listener("a", rate="1/s", retries=2, name="app:hook")
    def hook() -> None: ...

    config = Config.from_toml(write(tmp_path, '[listeners."app:hook"]\nrate = "5/min"\n'))
    [slot] = ListenerSet([hook], defaults=DeliveryOptions(), concurrency=4,
                         max_per_listener=None, overrides=config.listeners).slots
    assert (slot.options.rate, slot.options.retries) == ("5/min", 2)
    assert slot.rate == pytest.approx(5 / 60)


def test_invalid_toml_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 1"):
        Config.from_toml(write(tmp_path, "[daemon\n"))
    with pytest.raises(ConfigError, match=r"no such file.*eventbus init"):
        Config.from_toml(tmp_path / "missing.toml")


def test_default_socket_path() -> None:
    assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path(
        "/run/user/7/eventbus.sock"
    )
    assert default_socket_path({}) == Path(f"/tmp/eventbus-{os.getuid()}/eventbus.sock")
    assert DaemonConfig().socket_path == default_socket_path()
    assert DaemonConfig(socket=Path("/x.sock")).socket_path == Path("/x.sock")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    config = load_config(environ={"EVENTBUS_CONFIG": str(path), "EVENTBUS_SOCKET": "/s.sock"})
    assert config.path == path
    assert config.daemon.socket == Path("/s.sock")
    assert config.daemon.queue_size == 500
    explicit = load_config(path, environ={"EVENTBUS_CONFIG": "/nonexistent.toml"})
    assert explicit.path == path  # an explicit path beats the environment's
    assert apply_environment(Config(), {}) == Config()


def test_load_config_finds_eventbus_toml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(environ={}).path is None  # no file: the defaults
    write(tmp_path, "[daemon]\nqueue_size = 3\n")
    assert load_config(environ={}).daemon.queue_size == 3


def test_the_sample_config_in_examples_is_valid() -> None:
    sample = Path(__file__).resolve().parent.parent / "examples" / "eventbus.toml"
    config = Config.from_toml(sample)
    assert config.daemon.listeners_dir.resolve() == sample.parent.parent / "listeners.d"
    assert config.daemon == DaemonConfig(listeners_dir=config.daemon.listeners_dir)
    assert config.delivery == DeliveryConfig()


@pytest.mark.parametrize(("text", "key", "words"), [
    ("[daemon]\nconcurrency = 200000\n", "daemon.concurrency", "up to 10000"),
    ("[daemon]\nallow_uids = [-1]\n", "daemon.allow_uids", "from 0 to 4294967294"),
    ("[delivery]\nretries = 5000\n", "delivery.retries", "up to 1000"),
])
def test_numbers_out_of_range_are_refused_naming_key_file_and_range(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Config.from_toml(path)
    assert caught.value.key == key
    assert str(path) in str(caught.value)
    assert words in str(caught.value)


def test_eventbus_toml_is_found_in_a_parent_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "[daemon]\nqueue_size = 3\n")
    inner = tmp_path / "src" / "app"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    config = load_config(environ={})
    assert config.path == tmp_path / "eventbus.toml"
    assert config.daemon.queue_size == 3


def test_a_config_file_others_can_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[daemon]\nqueue_size = 3\n")
    path.chmod(0o666)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="others can write to it"):
        load_config(environ={})
    path.chmod(0o644)
    assert load_config(environ={}).daemon.queue_size == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_config_file_another_user_owns_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[daemon]\nqueue_size = 3\n")
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError, match="belongs to uid 65534, not to you"):
        load_config(path, environ={})


def test_the_sample_config_loads_and_names_every_key() -> None:
    import dataclasses

    from eventbus_cli.config import DaemonConfig, DeliveryConfig

    sample = Path(__file__).parents[1] / "examples" / "eventbus.toml"
    config = Config.from_toml(sample)
    assert config.delivery.check == "reject"
    text = sample.read_text()
    for table in (DaemonConfig, DeliveryConfig):
        for key in dataclasses.fields(table):
            assert f"\n{key.name} = " in text or f"# {key.name} = " in text, key.name
