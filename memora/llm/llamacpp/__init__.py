"""Local GGUF models through llama.cpp.

- :mod:`~memora.llm.llamacpp.native`: the native layer, the only module that imports
  ``llama_cpp`` (its ctypes bindings of ``llama.h``; no use of the high-level ``Llama``);
- :mod:`~memora.llm.llamacpp.kv`: KV sequences, spans and the set-based decode;
- :mod:`~memora.llm.llamacpp.model`: :class:`LlamaCppLLM`, generation over both.
"""

from memora.llm.llamacpp.kv import KVSequences, Span
from memora.llm.llamacpp.model import LlamaCppLLM

__all__ = ["KVSequences", "LlamaCppLLM", "Span"]
