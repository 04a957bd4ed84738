"""The model layer: the :class:`LLM` contract, its backends and :func:`load_model`.

Backends import their libraries only when used: ``memora.llm.llamacpp`` (llama_cpp) and
``memora.llm.openai`` (openai).
"""

from memora.llm.base import LLM, Completion, Message, Prompt, Stream, Usage
from memora.llm.options import SamplingOptions, parse_options
from memora.llm.registry import available_models, load_model, model_path, parse_model_spec
from memora.llm.sequence import SequenceModel
from memora.llm.set_prompt import SetPrompt

__all__ = [
    "LLM",
    "Completion",
    "Message",
    "Prompt",
    "SamplingOptions",
    "SequenceModel",
    "SetPrompt",
    "Stream",
    "Usage",
    "available_models",
    "load_model",
    "model_path",
    "parse_model_spec",
    "parse_options",
]
