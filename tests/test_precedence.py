"""Config precedence as one table: defaults < file < environment < flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventbus_cli.config import default_socket_path, resolve_config
from eventbus_cli.errors import ConfigError

FILE_SOCKET = "/tmp/eb-file/eb.sock"
ENV_SOCKET = "/tmp/eb-env/eb.sock"
FLAG_SOCKET = "/tmp/eb-flag/eb.sock"


# (file sets socket, env sets socket, flag sets socket) -> the socket used
@pytest.mark.parametrize(
    ("in_file", "in_env", "as_flag", "expected"),
    [
        (False, False, False, None),
        (True, False, False, FILE_SOCKET),
        (False, True, False, ENV_SOCKET),
        (True, True, False, ENV_SOCKET),
        (False, False, True, FLAG_SOCKET),
        (True, False, True, FLAG_SOCKET),
        (False, True, True, FLAG_SOCKET),
        (True, True, True, FLAG_SOCKET),
    ],
)
def test_socket_precedence(
    tmp_path: Path, in_file: bool, in_env: bool, as_flag: bool, expected: str | None
) -> None:
    config_file = tmp_path / "eventbus.toml"
    config_file.write_text(f'[daemon]\nsocket = "{FILE_SOCKET}"\n' if in_file else "")
    environ = {"EVENTBUS_CONFIG": str(config_file)}
    if in_env:
        environ["EVENTBUS_SOCKET"] = ENV_SOCKET
    config = resolve_config(socket=FLAG_SOCKET if as_flag else None, environ=environ)
    wanted = Path(expected) if expected else default_socket_path()
    assert config.daemon.socket_path == wanted


@pytest.mark.parametrize(
    ("from_file", "from_flag", "expected"),
    [
        (None, None, "info"),
        ("debug", None, "debug"),
        (None, "ERROR", "error"),
        ("debug", "warning", "warning"),
    ],
)
def test_log_level_precedence(
    tmp_path: Path, from_file: str | None, from_flag: str | None, expected: str
) -> None:
    config_file = tmp_path / "eventbus.toml"
    config_file.write_text(f'[daemon]\nlog_level = "{from_file}"\n' if from_file else "")
    config = resolve_config(config_file, log_level=from_flag, environ={})
    assert config.daemon.log_level == expected


def test_config_file_precedence_flag_over_env_over_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, size in (("cwd", 11), ("env", 22), ("flag", 33)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "eventbus.toml").write_text(f"[daemon]\nqueue_size = {size}\n")
    monkeypatch.chdir(tmp_path / "cwd")
    assert resolve_config(environ={}).daemon.queue_size == 11
    env = {"EVENTBUS_CONFIG": str(tmp_path / "env" / "eventbus.toml")}
    assert resolve_config(environ=env).daemon.queue_size == 22
    flagged = resolve_config(tmp_path / "flag" / "eventbus.toml", environ=env)
    assert flagged.daemon.queue_size == 33


def test_listeners_dir_from_the_file_is_relative_to_the_file_and_the_flag_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    config_file = tmp_path / "conf" / "eventbus.toml"
    config_file.write_text('[daemon]\nlisteners_dir = "handlers"\n')
    monkeypatch.chdir(tmp_path)
    assert resolve_config(config_file, environ={}).daemon.listeners_dir == (
        tmp_path / "conf" / "handlers"
    )
    flagged = resolve_config(config_file, listeners_dir="mine", environ={})
    assert flagged.daemon.listeners_dir == Path(os.getcwd()) / "mine"


def test_a_bad_log_level_flag_is_named() -> None:
    with pytest.raises(ConfigError, match="--log-level"):
        resolve_config(log_level="loud", environ={})
