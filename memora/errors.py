"""The errors memora raises: one tree rooted at :class:`MemoraError`.

Catch ``MemoraError`` for everything memora raises on purpose. The subclasses name what went wrong
from the caller's point of view, and every message says how to fix it::

    MemoraError
    ├── ConfigError                  settings or options that cannot work
    │   ├── InvalidOptionError       an unknown or out-of-range option (e.g. ``temprature=0.7``)
    │   │   └── EmptyQueryError      a query or question with no text (search, rank, choose,
    │   │                            memory banks); also an InvalidRecordError
    │   ├── InvalidSchemaError       a JSON schema that is not a valid schema
    │   ├── FileAccessError          a file or folder that cannot be read or written (missing,
    │   │                            a folder, no permission, disk full); names the path
    │   ├── InputFormatError         an input file that is not UTF-8 text or not valid JSON
    │   ├── NoStoryError             a story command on a missing file, or on a memora file
    │   │                            that holds no story (a memory store); nothing written
    │   ├── EmbedderMismatchError    a database whose vectors another embedder made (name or
    │   │                            dimension); names both
    │   └── OutputExistsError        a batch run's output exists and resume was not asked for
    │       └── NotResumableError    resume of an output memora did not write, or of a run
    │                                with another strategy, model or parameters; unchanged
    ├── ModelError                   anything about a model
    │   ├── ModelNotFoundError       an unknown model name or a path that does not exist
    │   ├── ModelLoadError           a file that exists but cannot be loaded (corrupt, not GGUF)
    │   ├── ContextOverflowError     a prompt (plus the output budget) longer than the context
    │   ├── UnsupportedError         a capability this backend does not have (see ``supports_*``)
    │   └── MissingDependencyError   an optional extra that is not installed
    ├── GenerationError              a model call that did not produce a usable result
    │   ├── GenerationCancelledError a generation stopped by its caller's cancel signal
    │   ├── OutputValidationError    output that failed validation after the bounded retries;
    │   │                            carries every raw output
    │   └── StepError                a story step without usable output after its retries;
    │                                the story is unchanged; carries every raw output
    ├── BackendError                 a remote endpoint failed
    │   ├── ConnectionFailedError    unreachable server, refused connection, timeout
    │   ├── AuthenticationError      HTTP 401 / 403
    │   ├── RateLimitError           HTTP 429 after the bounded retries
    │   ├── ServerError              HTTP 5xx after the bounded retries, or another bad status
    │   └── ProtocolError            an answer outside the OpenAI protocol: not JSON (an HTML
    │                                page), invalid JSON in the stream, chunks of the wrong shape
    ├── StoreError                   the memory store
    │   ├── ScopeError               a read or write without a scope (user, agent or session)
    │   ├── InvalidRecordError       empty or oversized text, metadata that is not JSON
    │   │   └── BatchInputError      a malformed line of a batch input file (``file:line:``)
    │   ├── RecordNotFoundError      an id the store does not hold (in this scope)
    │   ├── SchemaVersionError       a database written by a newer memora
    │   ├── DamagedFileError         a memora file SQLite reports as damaged (truncated,
    │   │                            overwritten); refused before anything is written
    │   ├── NotMemoraFileError       a folder, a non-SQLite file or another application's
    │   │                            database; refused and left byte-for-byte unchanged
    │   ├── ReadOnlyError            a read-only open of a missing file, or of one whose
    │   │                            tables would need creating or upgrading
    │   ├── DatabaseUnreachableError a database server that cannot be reached (or a lost
    │   │                            connection after the retries); the DSN without password
    │   ├── DatabaseAuthError        a database server that refused the DSN's credentials
    │   └── StoreBusyError           the database stayed locked, or aborted the transaction,
    │                                through the bounded retries
    ├── AccessError                  a request to memora serve without a valid API key (HTTP
    │   │                            401)
    │   ├── ForbiddenError           a valid key that may not do it: a scope it lacks,
    │   │                            another user's memories (HTTP 403)
    │   └── KeyNotFoundError         an API key id that does not exist (memora keys list)
    ├── ServerBusyError              memora serve's model queue is full (HTTP 429, Retry-After)
    ├── ClosedError                  a call on a model, memory store, story or agent after its
    │                                close(); open a new one
    └── AgentError                   a memory agent (memora.agents)
        ├── ExtractionError          a turn's facts could not be extracted after the bounded
        │                            retries; the turn is kept, marked failed, and can be retried
        └── CoreMemoryError          a core memory block that does not exist or would overflow

Errors never log and never swallow their cause: the original exception is chained
(``raise ... from exc``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "AccessError",
    "AgentError",
    "AuthenticationError",
    "BackendError",
    "BatchInputError",
    "ClosedError",
    "ConfigError",
    "ConnectionFailedError",
    "ContextOverflowError",
    "CoreMemoryError",
    "DamagedFileError",
    "DatabaseAuthError",
    "DatabaseUnreachableError",
    "EmbedderMismatchError",
    "EmptyQueryError",
    "ExtractionError",
    "FileAccessError",
    "ForbiddenError",
    "GenerationCancelledError",
    "GenerationError",
    "InputFormatError",
    "InvalidOptionError",
    "InvalidRecordError",
    "InvalidSchemaError",
    "KeyNotFoundError",
    "MemoraError",
    "MissingDependencyError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NoStoryError",
    "NotMemoraFileError",
    "NotResumableError",
    "OutputExistsError",
    "OutputValidationError",
    "ProtocolError",
    "RateLimitError",
    "ReadOnlyError",
    "RecordNotFoundError",
    "SchemaVersionError",
    "ScopeError",
    "ServerBusyError",
    "ServerError",
    "StepError",
    "StoreBusyError",
    "StoreError",
    "UnsupportedError",
]


class MemoraError(Exception):
    """Root of every error memora raises on purpose."""


class ConfigError(MemoraError):
    """Settings or options that cannot work."""


class InvalidOptionError(ConfigError, ValueError):
    """An unknown option name or a value out of range."""


class InvalidSchemaError(ConfigError, ValueError):
    """A JSON schema that is not itself a valid schema."""


class NoStoryError(ConfigError):
    """A story command given a path with no story: no file there, or a memora file that holds
    none (a memory store, a story file not started). Nothing is written to it."""


class FileAccessError(ConfigError):
    """A file or folder that cannot be read or written: missing, a folder where a file is
    expected, no permission, disk full. The message names the path and the fix."""


class InputFormatError(ConfigError, ValueError):
    """An input file that is not UTF-8 text, or not valid JSON where JSON is expected."""


class ModelError(MemoraError):
    """Anything about a model."""


class ModelNotFoundError(ModelError):
    """An unknown model name, or a model path that does not exist."""


class ModelLoadError(ModelError):
    """A model file that exists but cannot be loaded."""


class ContextOverflowError(ModelError):
    """A prompt that, with the tokens reserved for the output, does not fit the context."""

    def __init__(self, message: str, *, prompt_tokens: int, max_tokens: int, n_ctx: int) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.n_ctx = n_ctx


class UnsupportedError(ModelError):
    """A capability the backend does not have; check the ``supports_*`` attributes first."""


class MissingDependencyError(ModelError, ImportError):
    """An optional extra that is not installed."""


class GenerationError(MemoraError):
    """A model call that did not produce a usable result."""


class GenerationCancelledError(GenerationError):
    """A generation stopped because its caller's cancel signal was set (e.g.
    ``LlamaCppLLM.cancel_on(event)``); nothing of it is returned."""


class OutputValidationError(GenerationError):
    """Model output that still failed validation after the bounded retries.

    ``outputs`` holds the raw text of every attempt and ``errors`` the reason each one failed.
    """

    def __init__(
        self,
        message: str,
        *,
        outputs: Sequence[str],
        errors: Sequence[str],
        completions: Sequence[object] = (),
    ) -> None:
        super().__init__(message)
        self.outputs = list(outputs)
        self.errors = list(errors)
        self.completions = list(completions)  # memora.llm.Completion of each attempt


class StepError(GenerationError):
    """A step could not produce usable output within its bounded retries; the story is
    unchanged. ``outputs`` holds the raw model output of every attempt."""

    def __init__(self, message: str, *, outputs: list[str]) -> None:
        super().__init__(message)
        self.outputs = outputs


class BackendError(MemoraError):
    """A remote endpoint failed."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ConnectionFailedError(BackendError):
    """The server could not be reached (refused, DNS, timeout)."""


class AuthenticationError(BackendError):
    """The server rejected the credentials (HTTP 401 or 403)."""


class RateLimitError(BackendError):
    """HTTP 429 after the bounded retries."""


class ServerError(BackendError):
    """HTTP 5xx after the bounded retries, or another unexpected status."""


class ProtocolError(BackendError):
    """An endpoint that answered outside the OpenAI protocol: a body that is not JSON (an HTML
    page, often a base URL without ``/v1``), invalid JSON in the stream, or chunks of the wrong
    shape. The message shows the start of what was received and from which URL."""


class StoreError(MemoraError):
    """The memory store."""


class ScopeError(StoreError):
    """A read or write that names no scope; reads across scopes need ``all_scopes=True``."""


class InvalidRecordError(StoreError, ValueError):
    """A record the store refuses: empty or oversized text, non-JSON metadata, bad expiry."""


class EmptyQueryError(InvalidOptionError, InvalidRecordError):
    """A query or question with no text: searches, rerankers, ``choose`` and memory banks all
    refuse it with this one error (it is also an ``InvalidRecordError``, which searches raised
    before)."""


class RecordNotFoundError(StoreError, KeyError):
    """An id the store does not hold, or not in the caller's scope."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class BatchInputError(InvalidRecordError):
    """A malformed line in a batch input file; the message starts with ``file:line:``."""

    def __init__(self, message: str, *, path: str | Path, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


class OutputExistsError(ConfigError):
    """The output of a batch run exists and ``resume`` was not asked for."""


class NotResumableError(OutputExistsError):
    """``resume`` of an output that memora did not write (another tool's run, an input file),
    or of a run started with another strategy, model or parameters; the output is left as it
    was."""


class SchemaVersionError(StoreError):
    """A database written by a newer version of memora."""


class DamagedFileError(StoreError):
    """A memora file that SQLite reports as damaged (truncated or partly overwritten); it is
    refused before anything is written to it. Restore it from a copy."""


class NotMemoraFileError(StoreError):
    """A path that is a folder, a file that is not SQLite, or another application's SQLite
    database: refused before anything is written, so the file is left as it was."""


class ReadOnlyError(StoreError):
    """A read-only open (a command that only reads) of a missing file, or of a file whose
    tables would need creating or upgrading."""


class StoreBusyError(StoreError):
    """The database stayed locked by other writers through the bounded retries."""


class DatabaseUnreachableError(StoreError):
    """A database server that cannot be reached (refused, no such host or socket, timeout, a
    connection lost through the bounded retries); the message names the DSN without its
    password."""


class DatabaseAuthError(StoreError):
    """A database server that rejected the credentials of the DSN (wrong password, unknown
    role, no permission)."""


class EmbedderMismatchError(ConfigError):
    """A database whose vectors were made by another embedder (name or dimension) than the one
    opening it."""


class AccessError(MemoraError):
    """A request to ``memora serve`` without a valid API key (HTTP 401; :class:`ForbiddenError`
    for a key that may not do what it asks): keys come from ``memora keys create``."""


class ForbiddenError(AccessError):
    """A valid API key that may not do what the request asks: a scope it lacks, or another
    user's memories (HTTP 403)."""


class KeyNotFoundError(AccessError):
    """No API key has that id (``memora keys list`` shows them)."""


class ServerBusyError(MemoraError):
    """``memora serve``'s model queue is full, or a key has its limit of model calls running
    (HTTP 429 with ``Retry-After``)."""


class ClosedError(MemoraError):
    """A call on a model, memory store, story file or agent after its ``close()``."""


class AgentError(MemoraError):
    """A memory agent (:mod:`memora.agents`)."""


class ExtractionError(AgentError):
    """A turn's facts could not be extracted after the bounded retries.

    The turn stays in the agent's journal, marked failed (``turn_id``), and
    ``MemoryAgent.retry_failed()`` runs it again; ``outputs`` and ``errors`` hold every raw
    attempt and why it was refused.
    """

    def __init__(
        self,
        message: str,
        *,
        turn_id: int,
        outputs: Sequence[str] = (),
        errors: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.turn_id = turn_id
        self.outputs = list(outputs)
        self.errors = list(errors)


class CoreMemoryError(AgentError, ValueError):
    """A core memory block that does not exist, or an edit that would overflow its limit."""


def unknown_option(name: str, valid: Sequence[str], what: str) -> InvalidOptionError:
    """The error for an option name that ``what`` does not take, with the nearest valid name."""
    import difflib

    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return InvalidOptionError(f"{what} has no option '{name}'; {hint}options: {', '.join(valid)}")


def missing_extra(module: str, extra: str) -> MissingDependencyError:
    """The error for an optional dependency that is not installed."""
    return MissingDependencyError(
        f"{module} is not installed; install memora with the '{extra}' extra: "
        f"pip install 'memora[{extra}]'"
    )
