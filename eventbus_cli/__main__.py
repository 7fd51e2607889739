"""``python -m eventbus_cli``: the ``eventbus`` command."""

from .cli import main

main()
