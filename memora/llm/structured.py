"""JSON-schema output: check the schema, then parse and validate what a model wrote."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError

from memora import templates
from memora.errors import InvalidSchemaError

__all__ = ["OutputSpec", "SchemaLike", "repair_messages"]

SchemaLike = Mapping[str, Any] | type[BaseModel]


@dataclass(frozen=True)
class OutputSpec:
    """A checked JSON schema, plus the pydantic model to build when one was given."""

    schema: dict[str, Any]
    model: type[BaseModel] | None = None

    @classmethod
    def from_schema(cls, schema: SchemaLike) -> OutputSpec:
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return cls(schema=schema.model_json_schema(), model=schema)
        if not isinstance(schema, Mapping):
            raise InvalidSchemaError(
                f"expected a JSON schema (a dict) or a pydantic model class, got "
                f"{type(schema).__name__}"
            )
        as_dict = json.loads(json.dumps(schema))  # a plain, JSON-serializable copy
        validator = jsonschema.validators.validator_for(
            as_dict, default=jsonschema.Draft202012Validator
        )
        try:
            validator.check_schema(as_dict)
        except jsonschema.SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            raise InvalidSchemaError(
                f"not a valid JSON schema at {where}: {exc.message}. Fix the schema "
                "(see https://json-schema.org/understanding-json-schema/) or pass a pydantic model"
            ) from exc
        if as_dict.get("type", "object") != "object" and "properties" not in as_dict:
            # Grammars and response_format both want an object at the top level.
            raise InvalidSchemaError(
                f"the top-level schema must describe an object, got type {as_dict.get('type')!r}; "
                "wrap the value in an object, e.g. {'type': 'object', 'properties': {'value': ...}}"
            )
        return cls(schema=as_dict)

    def parse(self, text: str) -> Any:
        """Parse and validate ``text``; raise ``ValueError`` with the reason when it fails."""
        try:
            # strict=False: raw control characters (a newline inside a string) are accepted;
            # grammar-constrained small models do write them.
            data = json.loads(text, strict=False)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at char {exc.pos})") from exc
        if self.model is not None:
            try:
                return self.model.model_validate(data)
            except ValidationError as exc:
                raise ValueError(f"does not match the schema: {exc.errors()[0]['msg']}") from exc
        validator_cls = jsonschema.validators.validator_for(self.schema)
        error = jsonschema.exceptions.best_match(validator_cls(self.schema).iter_errors(data))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise ValueError(f"does not match the schema at {where}: {error.message}")
        return data


def repair_messages(
    messages: list[dict[str, str]], output: str, problem: str, *, keep: int = 2000
) -> list[dict[str, str]]:
    """``messages`` followed by the refused ``output`` (its first ``keep`` characters) and why
    it was refused: the prompt of a repair attempt."""
    return [
        *messages,
        {"role": "assistant", "content": output[:keep]},
        {
            "role": "user",
            "content": templates.render("memora.llm", "repair", problem=problem),
        },
    ]
