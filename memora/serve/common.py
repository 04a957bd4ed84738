"""What the routes of ``memora serve`` share: the limits, the request bodies' base, the
caller's API key and the scope it gives."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from memora.errors import ForbiddenError, InvalidOptionError
from memora.memory.types import Scope
from memora.serve.keys import ApiKey, ApiKeys

__all__ = ["Body", "Caller", "Limits", "at_most", "scope_of"]


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; each refusal names its limit."""

    max_body_bytes: int = 1_000_000
    max_records: int = 100
    max_k: int = 100
    max_list: int = 1_000
    max_documents: int = 100
    max_queue: int = 8
    max_generations_per_key: int = 2


class Body(BaseModel):
    # unknown fields are refused (a body that names a user_id is one: the key gives the scope);
    # strict: "10" is not a number
    model_config = ConfigDict(extra="forbid", strict=True)


def _caller(request: Request) -> ApiKey:
    """The key of a request (``Authorization: Bearer <key>``), checked on every request; an
    admin key as the user it names in ``?user_id=`` (and ``agent_id``)."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    keys: ApiKeys = request.app.state.keys
    key = keys.check(secret.strip() if scheme.lower() == "bearer" else None)
    user, agent = request.query_params.get("user_id"), request.query_params.get("agent_id")
    if key.admin:
        return key if user is None else replace(key, user_id=user, agent_id=agent)
    if (user is not None and user != key.user_id) or (agent is not None and agent != key.agent_id):
        raise ForbiddenError(
            f"this API key may not reach another user's memories (it belongs to user "
            f"{key.user_id}). Fix: leave user_id and agent_id out; an admin key names a user"
        )
    return key


Caller = Annotated[ApiKey, Depends(_caller)]


def scope_of(key: ApiKey, need: str) -> Scope:
    """The scope of a request: its key's, never its body's."""
    if not key.allows(need):
        raise ForbiddenError(f"this API key may not {need}. Fix: create a key with --scopes "
                          f"{','.join((*key.scopes, need))}")  # fmt: skip
    if key.user_id is None:
        raise InvalidOptionError(
            "an admin key acts for the user a request names, and this one names none. Fix: "
            "add ?user_id=U (and &agent_id=A) to the URL"
        )
    return Scope(user_id=key.user_id, agent_id=key.agent_id)


def at_most(value: int, limit: int, name: str, field: str) -> None:
    if value > limit:
        raise InvalidOptionError(
            f"{field} is {value}, over the server's limit {name}={limit}. Fix: ask for at most "
            f"{limit}, in several requests if needed"
        )
