"""One handler for two events: it mails the user whenever their account changes."""

import logging

from eventbus_cli import listener

log = logging.getLogger(__name__)


@listener("user_created", "password_changed")
async def send_email_handler(email: str, message: str = "Your account was updated.") -> None:
    log.info("would mail %s: %s", email, message)
