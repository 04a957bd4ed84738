"""The ``memora`` command, one module per command group: :mod:`memora.cli.main` (the group,
``models``, ``generate``, ``tui``), :mod:`memora.cli.story` (``write``, ``story ...``),
:mod:`memora.cli.memory` (``memory ...``) and :mod:`memora.cli.rank` (``rank``, ``eval``).
Group modules never import back from :mod:`memora.cli.main`. :mod:`memora.cli.boundary` is the
one error boundary: whatever a command raises reaches the user as one ``error:`` line."""

from memora.cli.main import main

__all__ = ["main"]
