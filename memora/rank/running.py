"""Where a batch run's rankings are computed: in this process (``local``) or on a Ray actor
pool (``ray``) whose actors each build their own reranker. Both yield ``(qid, ranking)`` pairs
to the driver, which writes them (see :mod:`memora.rank.output`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from memora.errors import missing_extra
from memora.rank.base import Reranker
from memora.rank.spec import RerankerSpec
from memora.rank.types import Doc, Ranking

__all__ = ["Executor", "Factory", "Work", "build", "run_local", "run_ray"]

Executor = Literal["local", "ray"]
Factory = RerankerSpec | Callable[[], Reranker]
Work = tuple[str, str, list[Doc]]  # qid, query text, candidates


def build(factory: Factory) -> Reranker:
    """The reranker of a :class:`RerankerSpec` or of a zero-argument callable."""
    return factory.build() if isinstance(factory, RerankerSpec) else factory()


def run_local(
    factory: Factory, todo: list[Work], within: Callable[[int, int], None] | None = None
) -> Iterator[tuple[str, Ranking]]:
    """Each query of ``todo`` ranked here, in order; ``within(done, total)`` after each model
    call inside a query. A reranker built from a spec is closed at the end; one from a
    callable is not (its caller owns its model)."""
    if not todo:
        return
    reranker = build(factory)
    if within is not None:
        reranker.on_progress(within)
    try:
        for qid, text, docs in todo:
            yield qid, reranker.rank(text, docs)
    finally:
        if within is not None:
            reranker.on_progress(None)
        if isinstance(factory, RerankerSpec):
            reranker.close()


class _Worker:
    """A Ray actor's state: its own reranker, built where it runs."""

    def __init__(self, factory: Factory) -> None:
        self.reranker = build(factory)

    def rank(self, qid: str, text: str, docs: list[Doc]) -> tuple[str, Ranking]:
        return qid, self.reranker.rank(text, docs)


def run_ray(
    factory: Factory, todo: list[Work], workers: int, address: str | None
) -> Iterator[tuple[str, Ranking]]:
    """The queries of ``todo`` ranked by ``workers`` Ray actors, as they finish. Ray is started
    (at ``address``, or a local cluster) unless it runs already; an actor's error is raised as
    itself."""
    if not todo:
        return
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise missing_extra("ray", "ray") from exc

    owned = not ray.is_initialized()
    if owned:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    remote: Any = ray.remote(num_cpus=1)(_Worker)
    actors = [remote.remote(factory) for _ in range(min(workers, len(todo)))]
    try:
        pool = ActorPool(actors)
        results = pool.map_unordered(lambda actor, work: actor.rank.remote(*work), todo)
        while True:
            try:
                result = next(results)
            except StopIteration:
                return
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
                    raise cause from exc
                raise
            yield result
    finally:
        for actor in actors:
            ray.kill(actor)
        if owned:
            ray.shutdown()
