"""Deprecated: the ``memora`` command's modules moved into the :mod:`memora.cli` package; this
module re-exports :mod:`memora.cli.story`."""

import warnings

from memora.cli.story import *  # noqa: F403
from memora.cli.story import __all__ as __all__

warnings.warn(
    "memora.cli_story moved to memora.cli.story; import from there",
    DeprecationWarning,
    stacklevel=2,
)
