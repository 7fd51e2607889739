"""``Config``: the daemon's settings, read from TOML, checked, written back, and defaulted.

Precedence is defaults < TOML file < environment < command-line flags: :meth:`Config.from_toml`
reads a file, :func:`apply_environment` reads the ``EVENTBUS_*`` variables, and
:func:`resolve_config` applies all of it with the flags on top.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .checks import is_whole, number_problem
from .errors import ConfigError

__all__ = (
    "BackendConfig",
    "Config",
    "DaemonConfig",
    "DeliveryConfig",
    "DeliveryOptions",
    "JournalConfig",
    "MetricsConfig",
    "apply_environment",
    "check_owner",
    "default_socket_path",
    "find_config_file",
    "listen_problem",
    "load_config",
    "resolve_config",
)

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
CHECKS = ("reject", "warn", "off")
"""What the argument check does with an emit a listener cannot take: refuse it, log it, or
nothing (the delivery then fails when it runs)."""
_CHOICES = {"log_level": LOG_LEVELS, "log_format": LOG_FORMATS, "check": CHECKS}
CONFIG_FILE_NAME = "eventbus.toml"


def default_socket_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_RUNTIME_DIR/eventbus.sock``, else ``/tmp/eventbus-$UID/eventbus.sock``."""
    environ = os.environ if environ is None else environ
    runtime_dir = environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return Path(runtime_dir) / "eventbus.sock"
    return Path(f"/tmp/eventbus-{os.getuid()}") / "eventbus.sock"


@dataclass(frozen=True)
class DaemonConfig:
    """The ``[daemon]`` table."""

    socket: Path | None = None  # None: default_socket_path(), decided when the daemon starts
    listeners_dir: Path = Path("listeners.d")
    queue_size: int = 10_000
    max_queue_bytes: int = 256 << 20
    max_scheduled: int = 100_000
    dedupe_window: float = 600.0
    max_dedupe_keys: int = 100_000
    concurrency: int = 64
    max_per_listener: int = 0  # calls of one listener at once, per daemon; 0: a fair share
    max_threads: int = 40
    max_message_bytes: int = 1_048_576
    max_connections: int = 512
    idle_timeout: float = 300.0
    shutdown_timeout: float = 30.0
    log_level: str = "info"
    log_format: str = "text"  # or "json": one object a line, for log shippers
    allow_uids: tuple[int, ...] = ()
    allow_gids: tuple[int, ...] = ()
    python_path: tuple[Path, ...] = ()  # more folders listener modules import from

    @property
    def socket_path(self) -> Path:
        """The socket to use: ``socket``, else :func:`default_socket_path`."""
        return self.socket if self.socket is not None else default_socket_path()


@dataclass(frozen=True)
class MetricsConfig:
    """The optional ``[metrics]`` table: where ``/metrics`` is served, as ``host:port``."""

    listen: str = "127.0.0.1:9464"

    @property
    def address(self) -> tuple[str, int]:
        """``listen`` as (host, port); an IPv6 host is written in brackets: ``[::1]:9464``."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


def listen_problem(value: str) -> str | None:
    """What is wrong with a ``host:port`` to listen on, if anything."""
    host, colon, port = value.rpartition(":")
    if not colon or not host or not (port.isascii() and port.isdigit()) \
            or not 0 < int(port) < 65536:
        return f'expected "host:port" with a port from 1 to 65535, got {value!r}'
    return None


@dataclass(frozen=True)
class JournalConfig:
    """The optional ``[journal]`` table: where the SQLite journal lives."""

    path: Path = Path("eventbus.db")


@dataclass(frozen=True)
class BackendConfig:
    """The optional ``[backend]`` table: a Redis server or a PostgreSQL database that N
    daemons share as one bus.

    ``url`` is as redis-py takes it (``redis://``, ``rediss://`` for TLS, ``unix://``; a
    password as ``redis://:secret@host``), or a PostgreSQL URL as libpq takes it
    (``postgresql://user:secret@host:5432/db``, ``?host=/run/postgresql`` for a socket);
    ``prefix`` names the bus's keys (on PostgreSQL: its schema), so several buses may share a
    server; ``name`` is this daemon's consumer name (default: the host name and a
    hash of the socket path), under which a restart resumes what it held; a delivery whose
    daemon has not renewed it for ``claim_after`` seconds is taken over by another; a command
    the store has not answered within ``command_timeout`` seconds fails, and the emits it carried
    are answered ``backend_unavailable``.
    """

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "eventbus"
    name: str = ""
    claim_after: float = 30.0
    command_timeout: float = 5.0


class DeliveryOptions(NamedTuple):
    """How a listener's deliveries are attempted.

    ``retries`` further attempts after the first failure, waiting ``backoff`` seconds before
    the first retry and twice as long before each next one; each call may take ``timeout``
    seconds (``math.inf`` for no limit). ``check`` is what an emit whose arguments the
    listener cannot take gets: one of :data:`CHECKS`. ``rate`` (``"10/s"``, ``"100/min"``)
    spaces the starts of its calls evenly, at most that many per interval; None: no limit.
    """

    retries: int = 0
    backoff: float = 0.5
    timeout: float = 60.0
    check: str = "reject"
    rate: str | None = None

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 for the first retry)."""
        return self.backoff * 2.0 ** (attempt - 2)


_OPTIONS = DeliveryOptions()


@dataclass(frozen=True)
class DeliveryConfig:
    """The ``[delivery]`` table: defaults for listeners that set no options."""

    retries: int = _OPTIONS.retries
    backoff: float = _OPTIONS.backoff
    timeout: float = _OPTIONS.timeout
    check: str = _OPTIONS.check
    keep_failed: int = 1000

    def options(self) -> DeliveryOptions:
        return DeliveryOptions(retries=self.retries, backoff=self.backoff, timeout=self.timeout,
                               check=self.check)


# Lowest allowed value of each number; anything lower is refused.
# The range of each number, lowest and highest allowed; anything outside is refused.
_RANGE: dict[str, tuple[float, float]] = {
    "queue_size": (1, 10_000_000), "max_queue_bytes": (1024, 1 << 40),
    "max_scheduled": (0, 10_000_000), "dedupe_window": (1, 30 * 86_400),
    "max_dedupe_keys": (0, 10_000_000),
    "concurrency": (1, 10_000), "max_threads": (1, 10_000), "max_per_listener": (0, 10_000),
    "max_message_bytes": (1024, 1 << 30), "shutdown_timeout": (0, 86_400),
    "max_connections": (1, 1_000_000), "idle_timeout": (0.1, 86_400 * 7),
    "retries": (0, 1000), "backoff": (0, 86_400), "timeout": (0.001, math.inf),
    "keep_failed": (0, 10_000_000), "claim_after": (1, 86_400),
    "command_timeout": (0.5, 600),
}
_SCHEDULE_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "event": str, "cron": str, "every": (str, int, float),
                  "args": list, "kwargs": dict, "tz": str, "catch_up": str}


def _schedule_tables(tables: object, path: Path | None) -> tuple[dict[str, Any], ...]:
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise ConfigError(path, "schedule", "must be tables, each written [[schedule]]")
    names: set[str] = set()
    for index, table in enumerate(tables):
        where = f"schedule[{index}]"
        for key, value in table.items():
            kind = _SCHEDULE_KEYS.get(key)
            if kind is None:
                raise ConfigError(path, f"{where}.{key}", "unknown key; a [[schedule]] takes "
                                  + ", ".join(_SCHEDULE_KEYS))
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigError(path, f"{where}.{key}", f"has the wrong type: {value!r}")
        for key in ("name", "event"):
            if key not in table:
                raise ConfigError(path, where, f"needs {key} = ...")
        if ("cron" in table) == ("every" in table):
            raise ConfigError(path, where, 'give cron = "0 9 * * 1-5" or every = "10m", one')
        if table["name"] in names:
            raise ConfigError(path, f"{where}.name", f"{table['name']!r} is taken already")
        names.add(table["name"])
    return tuple(dict(table) for table in tables)


_LISTENER_KEYS = ("retries", "backoff", "timeout", "check", "rate")


def _listener_tables(tables: object, path: Path | None) -> dict[str, dict[str, Any]]:
    """``[listeners."module:name"]`` tables, each key checked as the decorator checks it."""
    from .checks import rate_per_second

    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError(path, "listeners", 'must be tables, each written [listeners."NAME"] '
                          "with the listener's name as `eventbus listeners list` shows it")
    found: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        where = f'listeners."{name}"'
        for key, value in table.items():
            if key not in _LISTENER_KEYS:
                raise ConfigError(path, f"{where}.{key}", "unknown key; a listener's table "
                                  "takes " + ", ".join(_LISTENER_KEYS))
            if key == "rate":
                try:
                    rate_per_second(value)
                except ValueError as exc:
                    raise ConfigError(path, f"{where}.rate", f"expected {exc}") from None
            elif key == "check":
                if value not in CHECKS:
                    raise ConfigError(path, f"{where}.check",
                                      f"expected one of {', '.join(CHECKS)}, got {value!r}")
            elif (want := number_problem(value, whole=key == "retries", minimum=0,
                                         above=key == "timeout")) is not None:
                raise ConfigError(path, f"{where}.{key}", f"expected {want}, got {value!r}")
        found[name] = {key: float(value) if key in ("backoff", "timeout") else value
                       for key, value in table.items()}
    return found


_ID_RANGE = (0, 2**32 - 2)  # a uid or gid; 2**32 - 1 is (uid_t) -1, "no one"
_SECTIONS: dict[str, type[Any]] = {
    "daemon": DaemonConfig, "journal": JournalConfig, "delivery": DeliveryConfig,
    "metrics": MetricsConfig, "backend": BackendConfig,
}


@dataclass(frozen=True)
class Config:
    """All settings; ``path`` is the file they were read from, if any."""

    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    journal: JournalConfig | None = None
    metrics: MetricsConfig | None = None
    backend: BackendConfig | None = None
    path: Path | None = None
    schedules: tuple[dict[str, Any], ...] = ()
    """The ``[[schedule]]`` tables, their keys checked (the daemon makes them schedules)."""
    listeners: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The ``[listeners."NAME"]`` tables: options for one listener, over what its
    ``@listener(...)`` says (``retries``, ``backoff``, ``timeout``, ``check``, ``rate``)."""

    @classmethod
    def from_toml(cls, path: Path | str) -> Config:
        """Read and check a config file; relative paths in it are taken from its folder."""
        import tomllib  # only where there is a file to read

        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problem = "no such file (run `eventbus init` to write one)"
            raise ConfigError(path, None, problem) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(path, None, f"cannot read it: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(path, None, f"not valid TOML: {exc}") from exc
        return cls.from_dict(data, path=path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: Path | None = None) -> Config:
        """Build a config from parsed TOML, as :meth:`from_toml` does."""
        sections: dict[str, Any] = {}
        for name, table in data.items():
            if name == "schedule":
                sections["schedules"] = _schedule_tables(table, path)
                continue
            if name == "listeners":
                sections["listeners"] = _listener_tables(table, path)
                continue
            if name not in _SECTIONS:
                import difflib

                tables = [f"[{key}]" for key in _SECTIONS] + ['[listeners."NAME"]',
                                                               "[[schedule]]"]
                words = {**{key: f"[{key}]" for key in _SECTIONS},
                         "listeners": tables[-2], "schedule": tables[-1]}
                close = difflib.get_close_matches(name, words, n=1)
                guess = f"did you mean {words[close[0]]}? " if close else ""
                raise ConfigError(path, name, f"unknown section; {guess}the known ones are "
                                  f"{', '.join(tables)}")
            if not isinstance(table, dict):
                raise ConfigError(path, name, "must be a table, written [" + name + "]")
            sections[name] = _section(_SECTIONS[name], name, table, path)
        if "backend" in sections and "journal" in sections:
            raise ConfigError(path, "backend", "cannot be set together with [journal]: with a "
                              "Redis backend, Redis keeps the deliveries; remove one of them")
        if path is not None:  # default paths, like given ones, are taken from the file's folder
            folder = path.parent.absolute()
            daemon = sections.get("daemon", DaemonConfig())
            sections["daemon"] = dataclasses.replace(
                daemon, listeners_dir=folder / daemon.listeners_dir)
            if "journal" in sections:
                sections["journal"] = JournalConfig(folder / sections["journal"].path)
        return cls(path=path, **sections)

    def absolute(self) -> Config:
        """This config with its paths taken from the working directory now, as a daemon
        fixes them when it starts: asked later, a relative path would depend on the working
        directory still being there."""
        daemon = dataclasses.replace(self.daemon, socket=self.daemon.socket_path.absolute(),
                                     listeners_dir=self.daemon.listeners_dir.absolute(),
                                     python_path=tuple(p.absolute()
                                                       for p in self.daemon.python_path))
        journal = self.journal and JournalConfig(self.journal.path.absolute())
        path = self.path and self.path.absolute()
        return dataclasses.replace(self, daemon=daemon, journal=journal, path=path)

    def schedule_key(self, index: int) -> str:
        """How an error names the ``index``-th ``[[schedule]]`` table: by its name."""
        return f"schedule {self.schedules[index].get('name')!r} ([[schedule]] {index + 1})"

    def to_toml(self) -> str:
        """This config as TOML; paths inside the config file's folder are written relative."""
        data: dict[str, Any] = {}
        for name in _SECTIONS:
            section = getattr(self, name)
            if section is None:
                continue
            table: dict[str, Any] = {}
            for item in dataclasses.fields(section):
                value = getattr(section, item.name)
                if value is None:
                    continue
                if isinstance(value, Path):
                    value = self._relative(value)
                if isinstance(value, tuple):
                    value = [self._relative(v) if isinstance(v, Path) else v for v in value]
                table[item.name] = value
            data[name] = table
        import tomli_w  # only for writing; kept off the path of commands that only read

        return tomli_w.dumps(data)

    def _relative(self, value: Path) -> str:
        if self.path is not None and value.is_absolute():
            try:
                return str(value.relative_to(self.path.parent.absolute()))
            except ValueError:
                pass
        return str(value)


def _section(cls: type[Any], name: str, table: Mapping[str, Any], path: Path | None) -> Any:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in hints:
            import difflib

            close = difflib.get_close_matches(key, hints, n=1)
            guess = f" (did you mean {close[0]}?)" if close else ""
            problem = f"unknown key{guess}; [{name}] takes {', '.join(hints)}"
            raise ConfigError(path, f"{name}.{key}", problem)
        values[key] = _value(hints[key], f"{name}.{key}", value, path)
    return cls(**values)


def backend_problem(key: str, value: str) -> str | None:
    """What is wrong with a ``[backend]`` string setting, if anything."""
    if key == "url":
        if value.startswith(("postgresql://", "postgres://")):
            return None  # psycopg parses it, and says what is wrong when it connects
        return _redis_url_problem(value)
    if key == "prefix" and (not value or any(c in value for c in "{} \t\n")):
        return f"expected a non-empty name without braces or spaces, got {value!r}"
    if key == "name" and any(c in value for c in " \t\n"):
        return f"expected a name without spaces, got {value!r}"
    return None


def _redis_url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL, if anything: its scheme, port or database number."""
    from urllib.parse import parse_qs, urlsplit

    want = ('expected a Redis URL such as "redis://127.0.0.1:6379/0", or a PostgreSQL one '
            'such as "postgresql://user@host/db"')
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return f"{want}, got {url!r}"
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - it raises for a port out of range or not a number
    except ValueError:
        return f"{want}, with a port from 1 to 65535, got {url!r}"
    database = (parts.path.strip("/") if parts.scheme != "unix"
                else parse_qs(parts.query).get("db", [""])[0])
    if database and not (database.isascii() and database.isdigit()):
        return f"{want}, with a database number (0, 1, ...) after the port, got {url!r}"
    return None


def _value(kind: Any, key: str, value: Any, path: Path | None) -> Any:
    short = key.rpartition(".")[2]
    if kind is Path or kind == Path | None:
        if not isinstance(value, str) or not value:
            raise ConfigError(path, key, f"expected a path as a string, got {value!r}")
        found = Path(value).expanduser()
        if path is not None and not found.is_absolute():
            found = path.parent.absolute() / found
        return found
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(path, key, f"expected a string, got {value!r}")
        if short == "listen" and (problem := listen_problem(value)) is not None:
            raise ConfigError(path, key, problem)
        if key.startswith("backend.") and (problem := backend_problem(short, value)):
            raise ConfigError(path, key, problem)
        choices = _CHOICES.get(short)
        if choices is not None and value.lower() not in choices:
            raise ConfigError(path, key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value.lower() if choices is not None else value
    if kind == tuple[Path, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) and item
                                                  for item in value):
            raise ConfigError(path, key, f"expected a list of folders as strings, got {value!r}")
        return tuple(_value(Path, key, item, path) for item in value)
    if kind == tuple[int, ...]:
        first, last = _ID_RANGE
        if not isinstance(value, list) or not all(
                is_whole(item) and first <= item <= last for item in value):
            raise ConfigError(path, key, f"expected a list of whole numbers from {first} to "
                              f"{last} (uids or gids), got {value!r}")
        return tuple(value)
    low, high = _RANGE[short]
    want = number_problem(value, whole=kind is int, minimum=low,
                          maximum=None if math.isinf(high) else high)
    if want is not None:
        raise ConfigError(path, key, f"expected {want}, got {value!r}")
    return float(value) if kind is float else value


def apply_environment(config: Config, environ: Mapping[str, str] | None = None) -> Config:
    """Apply ``EVENTBUS_SOCKET`` over ``config``: the only setting the environment overrides
    besides ``EVENTBUS_CONFIG``, which :func:`load_config` reads to find the file."""
    environ = os.environ if environ is None else environ
    socket = environ.get("EVENTBUS_SOCKET")
    if socket:
        path = Path(socket).expanduser().absolute()
        config = dataclasses.replace(config, daemon=dataclasses.replace(config.daemon, socket=path))
    return config


def find_config_file(start: Path | None = None) -> Path | None:
    """``eventbus.toml`` in ``start`` (the working directory) or the nearest parent that has
    one, as git and ruff find theirs; None where no folder up to the root has one."""
    folder = (start or Path.cwd()).absolute()
    for candidate in (folder, *folder.parents):
        if (candidate / CONFIG_FILE_NAME).is_file():
            return candidate / CONFIG_FILE_NAME
    return None


def check_owner(path: Path) -> None:
    """Refuse a config file another user owns or others may write, as ssh does: it names
    the listeners directory, so whoever can write it chooses the code the daemon runs."""
    try:
        info = path.stat()
    except OSError:
        return  # reading it reports the problem
    if info.st_uid not in (os.getuid(), 0):
        raise ConfigError(path, None, f"it belongs to uid {info.st_uid}, not to you "
                          f"({os.getuid()}), so it is not used; check what it says, then "
                          f"take it over (chown) or pass --config with a file of your own")
    if info.st_mode & 0o022:
        raise ConfigError(path, None, f"others can write to it (mode {info.st_mode & 0o777:o}), "
                          f"so it is not used; run `chmod go-w {path}`")


def load_config(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Resolve the config: ``path``, else ``$EVENTBUS_CONFIG``, else ``eventbus.toml`` in the
    working directory or the nearest parent with one, else the defaults; then the
    environment over it. A file another user owns, or others can write, is refused."""
    environ = os.environ if environ is None else environ
    chosen = path or environ.get("EVENTBUS_CONFIG") or find_config_file()
    if chosen is None:
        return apply_environment(Config(), environ)
    check_owner(Path(chosen))
    return apply_environment(Config.from_toml(chosen), environ)


def resolve_config(
    config_file: Path | str | None = None,
    *,
    socket: Path | str | None = None,
    listeners_dir: Path | str | None = None,
    log_level: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """The whole precedence: defaults < TOML file < environment < these flags.

    Paths given as flags are taken from the current directory.
    """
    config = load_config(config_file, environ)
    changes: dict[str, Any] = {}
    if socket:
        changes["socket"] = Path(socket).expanduser().absolute()
    if listeners_dir:
        changes["listeners_dir"] = Path(listeners_dir).expanduser().absolute()
    if log_level:
        if log_level.lower() not in LOG_LEVELS:
            problem = f"expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}"
            raise ConfigError("command line", "--log-level", problem)
        changes["log_level"] = log_level.lower()
    if not changes:
        return config
    return dataclasses.replace(config, daemon=dataclasses.replace(config.daemon, **changes))


def import_paths(config: Config) -> tuple[Path, ...]:
    """The folders listener modules import from besides their own: the config file's folder
    (so a listener imports the app's own package from the project's root) and ``[daemon]
    python_path``."""
    folders = [config.path.parent.absolute()] if config.path is not None else []
    return tuple(dict.fromkeys([*folders, *config.daemon.python_path]))
