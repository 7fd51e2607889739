"""The same two listeners without `**kwargs`: the emit is refused, naming each of them.

    .venv/bin/python examples/user_deleted_without_kwargs.py

`user_deleted` carries `email` and `reason`, but each listener takes only one of them. The
daemon knows their signatures, so it refuses the emit before anything is queued (exit 1,
error `bad_arguments`), saying which listener does not take which keyword and how to fix
it; `--dry-run` asks the same question without emitting. With `--no-check` the event goes
through anyway, and each delivery fails when it runs with the TypeError that names the
argument, kept in the failed list. The fix is `**kwargs`, as in user_deleted.py.
"""

import logging

from eventbus_cli import listener

log = logging.getLogger(__name__)


@listener("user_deleted")
async def send_farewell_email_handler(email: str) -> None:
    log.info("would send a farewell mail to %s", email)


@listener("user_deleted")
def notify_customer_support(reason: str) -> None:
    log.info("would tell customer support why a user left: %s", reason)


if __name__ == "__main__":
    from _demo import demo

    sent = ["emit", "user_deleted", "email=ada@example.com", "reason=moved to a cabin"]
    raise SystemExit(demo(__file__, [
        sent,
        [*sent, "--dry-run"],
        [*sent, "--no-check", "--wait"],
        ["queue", "list", "--state", "failed"],
    ]))
