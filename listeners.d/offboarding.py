"""Two listeners on ``user_deleted``; each takes the keyword it needs and ``**kwargs`` for the
rest, since every listener of an event receives all of the event's arguments."""

import logging
from typing import Any

from eventbus_cli import listener

log = logging.getLogger(__name__)


@listener("user_deleted")
async def send_farewell_email_handler(email: str, **kwargs: Any) -> None:
    log.info("would send a farewell mail to %s", email)


@listener("user_deleted", retries=3, backoff=0.5, timeout=10)
def notify_customer_support(reason: str, **kwargs: Any) -> None:
    """A sync listener: it runs in a worker thread, so a blocking HTTP call is fine here."""
    log.info("would tell customer support why a user left: %s", reason)
