"""Memory as tools, for models that call tools (OpenAI-compatible endpoints): search and add
memories, and edit the core blocks. A bad call returns an error the model can read and act on;
it never raises into the conversation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jsonschema

from memora.errors import MemoraError

if TYPE_CHECKING:
    from .agent import MemoryAgent

__all__ = ["MAX_CHARS", "run_tool", "tool_specs"]

MAX_CHARS = 2000


def _spec(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
    }


def tool_specs(blocks: list[str]) -> list[dict[str, Any]]:
    """memory_search, memory_add, core_memory_append and core_memory_replace."""
    # No maxLength: llama.cpp servers build a grammar rule per allowed character, and long
    # bounds crash them; run_tool checks MAX_CHARS instead.
    text = {"type": "string", "minLength": 1}
    block = {"type": "string", "enum": blocks}
    return [
        _spec("memory_search", "Search the long-term memory of this user; returns the best "
              "matching memories, newest facts included.",
              {"query": text}),
        _spec("memory_add", "Store a fact about the user for later conversations.",
              {"text": text}),
        _spec("core_memory_append", "Add a line to a core memory block (always in the prompt).",
              {"block": block, "text": text}),
        _spec("core_memory_replace", "Replace exact text in a core memory block.",
              {"block": block, "old": text, "new": {"type": "string"}}),
    ]  # fmt: skip


def run_tool(agent: MemoryAgent, name: str, arguments: str | Mapping[str, Any]) -> str:
    """Run one call against ``agent``'s memory; the result (or the error) as JSON text."""
    specs = {s["function"]["name"]: s["function"] for s in tool_specs(list(agent.core.blocks()))}
    if name not in specs:
        return _error(f"there is no tool {name!r}; tools: {', '.join(specs)}")
    try:
        args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
    except json.JSONDecodeError as exc:
        return _error(f"the arguments are not JSON ({exc.msg}); send a JSON object")
    try:
        jsonschema.validate(args, specs[name]["parameters"])
    except jsonschema.ValidationError as exc:
        return _error(f"bad arguments for {name}: {exc.message}")
    long = [key for key, value in args.items() if isinstance(value, str) and len(value) > MAX_CHARS]
    if long:
        return _error(f"{', '.join(long)}: at most {MAX_CHARS} characters")
    try:
        if name == "memory_search":
            hits = agent.recall(args["query"])
            return json.dumps({"memories": [
                {"id": h.record.id, "text": h.record.text, "kind": h.record.metadata.get("kind")}
                for h in hits]})  # fmt: skip
        if name == "memory_add":
            added = agent.remember(args["text"], source="tool")
            return json.dumps({"id": added.record.id, "stored": added.created})
        if name == "core_memory_append":
            agent.core.append(args["block"], args["text"])
        else:
            agent.core.replace(args["block"], args["old"], args["new"])
        return json.dumps({"block": args["block"], "text": agent.core.get(args["block"])})
    except MemoraError as exc:
        return _error(str(exc))


def _error(message: str) -> str:
    return json.dumps({"error": message})
