"""The same two listeners without `**kwargs`: each fails with a TypeError, kept and shown.

    .venv/bin/python examples/user_deleted_without_kwargs.py

`user_deleted` carries `email` and `reason`, but each listener takes only one of them, so
calling it raises TypeError. That fails the delivery, not the daemon: `emit --wait` reports
both failures (exit 1), and `eventbus queue list --state failed` keeps them with the error
that names the argument which did not fit. The fix is `**kwargs`, as in user_deleted.py.
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

    raise SystemExit(demo(__file__, [
        ["emit", "user_deleted", "--kw", "email=ada@example.com",
         "--kw", "reason=moved to a cabin", "--wait"],
        ["queue", "list", "--state", "failed"],
    ]))
