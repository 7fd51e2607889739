"""Welcome a new user: one listener on one event."""

import logging

from eventbus_cli import listener

log = logging.getLogger(__name__)


@listener("user_created")
async def send_welcome_mail(email: str) -> None:
    log.info("would send a welcome mail to %s", email)
