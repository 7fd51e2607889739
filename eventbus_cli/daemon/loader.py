"""Import the listener modules of a directory and collect their listeners."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from ..bus.listener import EventListener, as_listener, find_name_clash
from ..bus.schedules import Schedule
from ..errors import EventbusError, LoaderError
from ..names import LISTENER_MODULES

__all__ = ("MODULE_PREFIX", "Loaded", "listener_files", "load_listeners", "load_modules")

MODULE_PREFIX = LISTENER_MODULES


def listener_files(directory: Path) -> list[Path]:
    """The files :func:`load_listeners` imports: ``*.py``, sorted, none starting with ``_``."""
    return sorted(path for path in directory.glob("*.py") if not path.name.startswith("_"))


class Loaded(NamedTuple):
    """What the listener files declare: listeners, and ``cron`` / ``every`` schedules."""

    listeners: list[EventListener]
    schedules: list[Schedule]


def load_listeners(directory: Path | str) -> list[EventListener]:
    """Import every listener file of ``directory`` and return its listeners, in file order
    (see :func:`load_modules`)."""
    return load_modules(directory).listeners


def load_modules(directory: Path | str, import_paths: Iterable[Path] = ()) -> Loaded:
    """Import every listener file of ``directory`` and return its listeners and schedules,
    in file order; a schedule without a name takes its variable's. ``import_paths`` go on
    the import path first, and stay (a listener may import the app's package at call time).

    Each call imports the files afresh, so a reload builds a new set while the listeners in
    use keep the modules they came from. If any file fails, no module of this load stays
    registered and :class:`LoaderError` names the file and line. Listeners made with Litestar's
    ``@listener`` load too, when the file imports Litestar.
    """
    directory = Path(directory)
    if not directory.is_dir():
        hint = "create it, or set [daemon] listeners_dir or serve --listeners-dir"
        raise LoaderError(directory, "no such directory", hint=hint)
    for folder in reversed(list(import_paths)):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    found: dict[int, EventListener] = {}
    schedules: dict[str, tuple[Schedule, Path]] = {}
    # Helper modules of the directory (imported by bare name) are imported afresh too.
    replaced: dict[str, ModuleType | None] = {
        name: sys.modules.pop(name) for name in _helper_modules(directory)
    }
    sys.path.insert(0, str(directory))
    try:
        for path in listener_files(directory):
            name = MODULE_PREFIX + path.stem
            replaced.setdefault(name, sys.modules.get(name))
            module = _import(name, path)
            for key, value in vars(module).items():
                if isinstance(value, Schedule):
                    _add_schedule(schedules, key, value, path)
                    continue
                item = as_listener(value)
                if item is not None:
                    found.setdefault(id(value), item)
        _refuse_name_clash(list(found.values()), directory)
    except BaseException:
        for name, previous in replaced.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
        raise
    finally:
        with contextlib.suppress(ValueError):  # a listener file may have taken it off itself
            sys.path.remove(str(directory))
    return Loaded(list(found.values()), [schedule for schedule, _ in schedules.values()])


def _add_schedule(schedules: dict[str, tuple[Schedule, Path]], key: str, schedule: Schedule,
                  path: Path) -> None:
    if schedule.name is None:
        schedule.name = key
    taken = schedules.get(schedule.name)
    if taken is not None and taken[0] is not schedule:
        raise LoaderError(path, f"schedule name {schedule.name!r} is taken by {taken[1].name} "
                          "too; rename one, or pass name=...")
    schedules[schedule.name] = (schedule, path)


def _refuse_name_clash(listeners: list[EventListener], directory: Path) -> None:
    clash = find_name_clash(listeners)
    if clash is not None:
        first, second = clash
        raise LoaderError(
            directory / (second.module.removeprefix(MODULE_PREFIX) + ".py"),
            f"two listeners are named {second.name!r} ({first.where} and {second.where}); "
            "rename one function or pass listener(..., name=...)",
        )


def _helper_modules(directory: Path) -> list[str]:
    """Modules that a listener file of ``directory`` imports by bare name: its ``_*`` files
    and packages, wherever they were imported from first, and anything else loaded from it."""
    folder = directory.absolute()
    helpers = {path.name.removesuffix(".py") for path in folder.glob("_*")}
    found = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name.startswith(MODULE_PREFIX):
            continue
        if name.partition(".")[0] in helpers or (
            isinstance(file, str) and Path(file).parent.absolute() == folder
        ):
            found.append(name)
    return found


def _import(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoaderError(path, "not importable as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise LoaderError(path, f"SyntaxError: {exc.msg}", line=exc.lineno) from exc
    except BaseException as exc:  # KeyboardInterrupt or SystemExit at import too: a bad file
        line = _line_in(exc, path)
        last = traceback.extract_tb(exc.__traceback__)[-1]
        # Where it was raised, when that is another file; but eventbus's own checks (a bad
        # @listener id) are named by the listener file's line alone.
        ours = last.filename.startswith(_PACKAGE) and isinstance(exc, EventbusError)
        where = ("" if ours or last.filename == str(path.absolute())
                 else f" (in {last.filename}, line {last.lineno})")
        error = (str(exc) if isinstance(exc, EventbusError)
                 else "".join(traceback.format_exception_only(exc)).strip())
        raise LoaderError(path, error + where, line=line) from exc
    return module


_PACKAGE = str(Path(__file__).parent.parent)


def _line_in(exc: BaseException, path: Path) -> int | None:
    here = str(path.absolute())
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == here]
    return lines[-1] if lines else None
