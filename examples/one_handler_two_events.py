"""One handler for two events: the user hears of both their sign-up and a password change.

    .venv/bin/python examples/one_handler_two_events.py

`@listener("user_created", "password_changed")` registers one function for both ids;
`message` has a default, so an emit may leave it out.
"""

import logging

from eventbus_cli import listener

log = logging.getLogger(__name__)


@listener("user_created", "password_changed")
async def send_email_handler(email: str, message: str = "Welcome aboard.") -> None:
    log.info("would mail %s: %s", email, message)


if __name__ == "__main__":
    from _demo import demo

    raise SystemExit(demo(__file__, [
        ["listeners", "list"],
        ["emit", "user_created", "--kw", "email=ada@example.com", "--wait"],
        ["emit", "password_changed", "--kw", "email=ada@example.com",
         "--kw", "message=Your password was changed.", "--wait"],
    ]))
