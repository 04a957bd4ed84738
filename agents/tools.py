"""Memory as tools, for models that call tools (OpenAI-compatible endpoints): search and add
memories, and edit the core blocks. A bad call returns an error the model can read and act on;
it never raises into the conversation. The tools' descriptions are ``agents/prompts/tools.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import jsonschema

from memora import templates
from memora.errors import AgentError, MemoraError
from memora.llm.base import LLM
from memora.memory.types import SearchHit

from .config import AgentConfig
from .context import day
from .core import CoreMemory

__all__ = ["MAX_CHARS", "ToolHost", "answer_with_tools", "run_tool", "tool_specs"]

MAX_CHARS = 2000


class ToolHost(Protocol):
    """What the tools work on (a :class:`~memora.agents.MemoryAgent`)."""

    @property
    def core(self) -> CoreMemory: ...

    def recall(self, query: str, k: int | None = None) -> list[SearchHit]: ...

    def remember(self, text: str, *, source: str = "user") -> Any: ...


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
    about = templates.data("memora.agents", "tools")
    return [
        _spec("memory_search", about["memory_search"], {"query": text}),
        _spec("memory_add", about["memory_add"], {"text": text}),
        _spec("core_memory_append", about["core_memory_append"], {"block": block, "text": text}),
        _spec("core_memory_replace", about["core_memory_replace"],
              {"block": block, "old": text, "new": {"type": "string"}}),
    ]  # fmt: skip


def run_tool(agent: ToolHost, name: str, arguments: str | Mapping[str, Any]) -> str:
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
                {"id": h.record.id, "text": h.record.text, "date": day(h.record.when),
                 "kind": h.record.metadata.get("kind")}
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


def answer_with_tools(
    llm: LLM, agent: ToolHost, messages: list[dict[str, str]], config: AgentConfig
) -> tuple[str, list[dict[str, Any]]]:
    """Rounds of model calls that may call the tools, until an answer without calls (the last
    round offers none); the answer and every call with its result."""
    specs = tool_specs(list(agent.core.blocks()))
    convo: list[dict[str, Any]] = list(messages)
    calls: list[dict[str, Any]] = []
    for round_ in range(config.max_tool_rounds):
        choice: Any = "auto"
        if round_ == 0 and config.first_tool:
            choice = {"type": "function", "function": {"name": config.first_tool}}
        last = round_ == config.max_tool_rounds - 1
        answer = llm.call_tools(
            convo, [] if last else specs, tool_choice="none" if last else choice,
            max_tokens=config.max_tokens, temperature=config.temperature, seed=config.seed,
        )  # fmt: skip
        if not answer.calls:
            return answer.text.strip(), calls
        convo.append({"role": "assistant", "content": answer.text or "", "tool_calls": [
            c.to_openai() for c in answer.calls]})  # fmt: skip
        for call in answer.calls:
            result = run_tool(agent, call.name, call.arguments)
            calls.append({"name": call.name, "arguments": call.arguments, "result": result})
            convo.append({"role": "tool", "tool_call_id": call.id, "content": result})
    raise AgentError(  # pragma: no cover - the last round offers no tools
        f"no answer after {config.max_tool_rounds} tool rounds"
    )


def _error(message: str) -> str:
    return json.dumps({"error": message})
