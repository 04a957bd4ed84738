"""The story engine: RecurrentGPT-style language recurrence with a person in the loop."""

from memora.recurrent.types import Premise, Step, StepError, StepStats, StoryOptions

__all__ = ["Premise", "Step", "StepError", "StepStats", "StoryEngine", "StoryOptions"]


def __getattr__(name: str) -> object:
    # StoryEngine pulls in the memory store (faiss, the embedder): load it on first use.
    if name == "StoryEngine":
        from memora.recurrent.engine import StoryEngine

        return StoryEngine
    raise AttributeError(f"module 'memora.recurrent' has no attribute {name!r}")
