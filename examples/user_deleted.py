"""Two listeners on one event: a farewell mail, and a note to customer support.

    .venv/bin/python examples/user_deleted.py

Every listener of an event gets all of the event's arguments, so each takes the keyword it
needs and `**kwargs` for the rest. The support note is a sync function (it runs in a worker
thread, where a blocking HTTP call would be fine) with retries.
"""

import logging
from typing import Any

from eventbus_cli import listener

log = logging.getLogger(__name__)


@listener("user_deleted")
async def send_farewell_email_handler(email: str, **kwargs: Any) -> None:
    log.info("would send a farewell mail to %s", email)


@listener("user_deleted", retries=3, backoff=0.5, timeout=10)
def notify_customer_support(reason: str, **kwargs: Any) -> None:
    log.info("would tell customer support why a user left: %s", reason)


if __name__ == "__main__":
    from _demo import demo

    raise SystemExit(demo(__file__, [
        ["emit", "user_deleted", "--kw", "email=ada@example.com",
         "--kw", "reason=moved to a cabin", "--wait"],
    ]))
