"""The package's layers, read from its imports (ast): each module imports only from below."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import eventbus_cli

PACKAGE = Path(eventbus_cli.__file__).parent

# Lowest first. A module may import from a lower floor, or from its own folder.
FLOORS: dict[str, int] = {
    "_version": 0, "errors": 0,
    "checks": 1, "names": 1, "plural": 1,
    "config": 2, "peers": 2,
    "protocol": 3,
    "bus": 4,
    "stores": 5,
    "daemon": 6, "client": 6,
    "testing": 8,
    "litestar": 9, "dashboard": 9,
    "cli": 10,
    "__init__": 11, "__main__": 11,
}
LIGHT = ("client", "client.sync", "client.calls", "protocol.ops", "protocol.event",
         "protocol.codec", "names", "checks", "errors", "config", "peers")
"""Modules on the `eventbus emit` path: no anyio, nothing of bus/, stores/ or daemon/."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """``(absolute module, at module level outside TYPE_CHECKING)`` for each import."""
    tree = ast.parse(path.read_text(), str(path))
    package = name.rpartition(".")[0] if path.name != "__init__.py" else name
    if name == "__init__":
        package = ""
    lazy: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or (
            isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        ):
            lazy.update(id(child) for child in ast.walk(node) if child is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) not in lazy) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(["eventbus_cli", *base, *([node.module] if node.module else [])])
                targets = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
            else:
                targets = [node.module or ""]
            found += [(target, id(node) not in lazy) for target in targets]
    return found


def _floor(module: str) -> int:
    return FLOORS[module.split(".")[0]]


MODULES = _modules()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_imports_only_from_below_or_its_own_folder(name: str) -> None:
    for target, _ in _imports(name, MODULES[name]):
        if not target.startswith("eventbus_cli"):
            continue
        inner = target.removeprefix("eventbus_cli").lstrip(".") or "__init__"
        in_folder = "." in name or MODULES[name].name == "__init__.py"  # a package's own
        same_folder = in_folder and name != "__init__" and inner.split(".")[0] == name.split(".")[0]
        assert same_folder or _floor(inner) < _floor(name), f"{name} imports {inner}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_cli_imports_typer_or_rich(name: str) -> None:
    if name.startswith("cli"):
        return
    for target, _ in _imports(name, MODULES[name]):
        assert target.split(".")[0] not in ("typer", "rich"), f"{name} imports {target}"


@pytest.mark.parametrize("name", LIGHT)
def test_the_emit_path_imports_no_anyio_and_nothing_of_the_daemon(name: str) -> None:
    for target, eager in _imports(name, MODULES[name]):
        if eager:
            assert target.split(".")[0] != "anyio", f"{name} imports anyio at module level"
        assert not target.startswith(("eventbus_cli.bus", "eventbus_cli.stores",
                                      "eventbus_cli.daemon")), f"{name} imports {target}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_library_code_never_prints_or_exits(name: str) -> None:
    if name.startswith("cli") or name == "__main__":
        return
    tree = ast.parse(MODULES[name].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            assert called not in ("print", "sys.exit", "exit", "quit"), f"{name} calls {called}"


def test_all_and_the_lazy_loader_agree() -> None:
    names = set(eventbus_cli.__all__)
    eager = {name for name in names if name in vars(eventbus_cli)}
    lazy = set(eventbus_cli._LAZY)
    assert eager | lazy == names, sorted(names - eager - lazy)
    assert not eager & lazy
    for name in sorted(names):
        assert getattr(eventbus_cli, name) is not None, name


def test_emit_loads_only_what_sending_needs() -> None:
    """What `eventbus emit` imports: no anyio, no rich, no msgspec (the result Structs cost
    its start-up more than the reply), no stores/ or daemon/ module."""
    code = (
        "import sys\n"
        "sys.argv = ['eventbus', '--socket', '/nonexistent/eb.sock', 'emit', 'a', '--kw', 'k=v']\n"
        "from eventbus_cli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('anyio', 'rich', 'msgspec') or "
        "m.startswith(('eventbus_cli.daemon', 'eventbus_cli.stores'))]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.strip().splitlines()[-1:] in ([], [""]), result.stdout


def _classes(path: Path) -> list[ast.ClassDef]:
    tree = ast.parse(path.read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def test_stores_are_composed_never_subclassed() -> None:
    """A broker derives from the ``Broker`` contract alone: none from another broker."""
    brokers = [(name, node) for name, path in MODULES.items()
               if name.startswith(("stores", "bus")) for node in _classes(path)
               if any(ast.unparse(base).endswith("Broker") for base in node.bases)]
    assert {node.name for _, node in brokers} >= {"MemoryBroker", "SharedBroker"}
    for name, node in brokers:
        assert [ast.unparse(base) for base in node.bases] == ["Broker"], f"{name}.{node.name}"


def test_nothing_outside_stores_asks_which_store_it_is() -> None:
    """Outside ``stores/`` only the server names the package, for ``open_broker``; no module
    there imports a store's own module."""
    for name, path in MODULES.items():
        if name.startswith("stores"):
            continue
        for target, _ in _imports(name, path):
            if target.startswith("eventbus_cli.stores"):
                assert (name, target) == ("daemon.server", "eventbus_cli.stores"), name


def test_the_client_side_never_imports_the_engine_stores_or_daemon() -> None:
    """``client/`` sits beside ``daemon/`` on the protocol: an app that only sends events
    loads nothing of what runs them."""
    for name, path in MODULES.items():
        if not name.startswith("client"):
            continue
        for target, _ in _imports(name, path):
            assert not target.startswith(("eventbus_cli.bus", "eventbus_cli.stores",
                                          "eventbus_cli.daemon")), f"{name} imports {target}"
