"""One handler for two events: it mails the user when their account is made or changed."""

import logging

from eventbus_cli import current_delivery, listener

log = logging.getLogger(__name__)

MESSAGES = {
    "user_created": "Welcome aboard: your account is ready.",
    "password_changed": "Your password was changed.",
}


@listener("user_created", "password_changed")
async def send_email_handler(email: str, message: str | None = None) -> None:
    delivery = current_delivery()
    event = delivery.event if delivery is not None else "user_created"
    log.info("would mail %s: %s", email, message or MESSAGES[event])
