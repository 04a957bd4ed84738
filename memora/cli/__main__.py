"""``python -m memora.cli``: the ``memora`` command."""

from memora.cli.main import main

main()
