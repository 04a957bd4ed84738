"""Memory-augmented agents on memora's memories (installed as ``memora.agents``).

``MemoryAgent`` answers with the user's memories in the prompt and extracts facts from every
turn in the background; core blocks are pinned facts; the journal keeps every turn.
"""

from memora.errors import CoreMemoryError, ExtractionError

from .agent import DEFAULT_SYSTEM, AsyncReplyStream, MemoryAgent, Reply, ReplyStream
from .core import DEFAULT_BLOCKS, CoreMemory
from .extract import Action, Extraction, Extractor
from .journal import Journal, Turn

__all__ = [
    "DEFAULT_BLOCKS",
    "DEFAULT_SYSTEM",
    "Action",
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
