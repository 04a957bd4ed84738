"""Prompting: set-based (order-invariant) prompts, multiple choice, rank aggregation."""

from memora.prompting.aggregate import borda, kemeny, majority
from memora.prompting.choose import Choice, Method, choose
from memora.prompting.set_prompt import SetPrompt

__all__ = ["Choice", "Method", "SetPrompt", "borda", "choose", "kemeny", "majority"]
