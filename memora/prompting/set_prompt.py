"""Moved: :class:`SetPrompt` is a prompt value of the model layer now
(:mod:`memora.llm.set_prompt`); this module re-exports it for existing imports."""

from memora.llm.set_prompt import SetPrompt

__all__ = ["SetPrompt"]
