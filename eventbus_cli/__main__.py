"""``python -m eventbus_cli``: the ``eventbus`` command."""

from .cli.app import main

main()
