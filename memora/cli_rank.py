"""Deprecated: the ``memora`` command's modules moved into the :mod:`memora.cli` package; this
module re-exports :mod:`memora.cli.rank`."""

import warnings

from memora.cli.rank import *  # noqa: F403
from memora.cli.rank import __all__ as __all__

warnings.warn(
    "memora.cli_rank moved to memora.cli.rank; import from there",
    DeprecationWarning,
    stacklevel=2,
)
