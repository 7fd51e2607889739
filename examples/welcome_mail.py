"""Welcome a new user: one listener on one event.

    .venv/bin/python examples/welcome_mail.py

Serves this file's listener, emits `user_created` and waits for the mail to be "sent".
"""

import logging

from eventbus_cli import listener

log = logging.getLogger(__name__)


@listener("user_created")
async def send_welcome_mail(email: str) -> None:
    log.info("would send a welcome mail to %s", email)


if __name__ == "__main__":
    from _demo import demo

    raise SystemExit(demo(__file__, [
        ["emit", "user_created", "--kw", "email=ada@example.com", "--wait"],
    ]))
