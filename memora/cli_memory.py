"""Deprecated: the ``memora`` command's modules moved into the :mod:`memora.cli` package; this
module re-exports :mod:`memora.cli.memory`."""

import warnings

from memora.cli.memory import *  # noqa: F403
from memora.cli.memory import __all__ as __all__

warnings.warn(
    "memora.cli_memory moved to memora.cli.memory; import from there",
    DeprecationWarning,
    stacklevel=2,
)
