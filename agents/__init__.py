"""Memory-augmented agents on memora's memories (installed as ``memora.agents``).

``MemoryAgent`` answers with the user's memories in the prompt and extracts facts from every
turn in the background; ``AgentConfig`` holds its options; core blocks are pinned facts; the
journal keeps every turn.
"""

from memora.errors import CoreMemoryError, ExtractionError

from .abstain import ABSTAIN_TEXT
from .agent import MemoryAgent
from .config import DEFAULT_SYSTEM, AgentConfig
from .core import DEFAULT_BLOCKS, CoreMemory
from .extract import Action, Extraction, Extractor
from .journal import Journal, Turn
from .streams import AsyncReplyStream, Reply, ReplyStream

__all__ = [
    "ABSTAIN_TEXT",
    "DEFAULT_BLOCKS",
    "DEFAULT_SYSTEM",
    "Action",
    "AgentConfig",
    "AsyncReplyStream",
    "CoreMemory",
    "CoreMemoryError",
    "Extraction",
    "ExtractionError",
    "Extractor",
    "Journal",
    "MemoryAgent",
    "Reply",
    "ReplyStream",
    "Turn",
]
