"""The wire protocol between clients and the daemon: one JSON request a line, one reply a
line. :mod:`.ops` defines each op once; the daemon, the clients and the README follow it.
:mod:`.event` checks the event object the emits carry, :mod:`.codes` names the errors."""
