"""``memora rank`` and ``memora eval``: batch reranking to a TREC run, and its evaluation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from memora.rank.rerankers import STRATEGIES

if TYPE_CHECKING:
    from memora.rank.batch import BatchReport

__all__ = ["eval_", "rank"]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.option("--queries", "queries_path", required=True, type=FILE, help='JSONL {"qid", "text"}')
@click.option("--docs", "docs_path", required=True, type=FILE, help='JSONL {"docid", "text"}')
@click.option(
    "--candidates",
    "candidates_path",
    type=FILE,
    default=None,
    help='TREC run or JSONL {"qid", "docid"|"docids"}; without it every doc is a candidate '
    "of every query, pre-selected to --top-k by the bi-encoder",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the TREC run to write (diagnostics go to OUTPUT.diagnostics.jsonl)",
)
@click.option(
    "--strategy",
    type=click.Choice(["auto", *STRATEGIES]),
    default="auto",
    show_default=True,
    help="auto: pointwise on a local model, full on an openai: endpoint (said on stderr)",
)
@click.option(
    "--model",
    "model_spec",
    default="default",
    show_default=True,
    help="name, .gguf path or openai:<model> (MEMORA_OPENAI_* settings apply)",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="candidates reranked per query (the first of each query's list)",
)
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Ray actors, each with its own model (or concurrent endpoint calls)",
)
@click.option("--address", default=None, help="Ray cluster address (default: a local cluster)")
@click.option("--resume", is_flag=True, help="continue OUTPUT, skipping the queries it has")
@click.option(
    "--on-error",
    type=click.Choice(["skip", "fail"]),
    default="fail",
    show_default=True,
    help="on a malformed input line: warn and skip it, or stop",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="CPU threads per llama.cpp model",
)
@click.option("--n-ctx", type=click.IntRange(min=16), default=2048, show_default=True)
@click.option(
    "--passage-words",
    type=click.IntRange(min=0),
    default=None,
    help="split docs into passages of N words (stride 2/3 N) and score each doc by its best "
    "passage (MaxP). Default: split only when some candidate is longer than the strategy's "
    "per-passage budget (75 words for full/sliding/psc/setwise, 150 pointwise, 190 biencoder), "
    "since longer text would be cut; 0: never split",
)
@click.option(
    "--max-calls",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="model calls one query may need, estimated before the run starts (pointwise: one "
    "per candidate; sliding: one per window); a run over it is refused",
)
def rank(**options: Any) -> None:
    """Rerank each query's candidates and write a TREC run, one query at a time: an
    interrupted or killed run keeps every finished query, and --resume continues it."""
    from memora.rank.batch import check_cost, run_ranking
    from memora.rank.config import RankConfig
    from memora.settings import load_settings

    config = RankConfig(**options)
    inputs = config.load_inputs()
    for warning in inputs.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    settings = load_settings(model=config.model_spec, n_ctx=config.n_ctx, n_threads=config.threads)
    spec = config.reranker_spec(inputs, settings.model, settings.model_options())
    calls = check_cost(inputs, spec, config.top_k, config.max_calls)
    why = config.chosen_strategy(settings.model)[1]
    err_console.print(f"strategy: {spec.strategy} ({why}); up to {calls:,} model calls a query")
    if spec.passage_words is not None and config.passage_words is None:
        err_console.print(f"long documents: ranking passages of {spec.passage_words} words (MaxP)")
    with Progress(*_progress_columns(), console=err_console) as bar:
        progress = _BarProgress(bar, spec.strategy, len(inputs.queries), calls)
        try:
            report = run_ranking(config, inputs, spec, progress)
        except KeyboardInterrupt:
            bar.stop()
            if config.output.exists():
                err_console.print(
                    f"interrupted: finished queries are kept in {config.output}; rerun with "
                    "--resume"
                )
            else:
                err_console.print("interrupted before a query finished; nothing was written")
            sys.exit(130)
    err_console.print(
        f"ranked {report.ranked} queries ({report.resumed} done before) -> {report.run_path}"
    )
    _say_how_it_went(report)


def _say_how_it_went(report: BatchReport) -> None:
    """A warning when most queries needed their listwise answer repaired, or came back in
    their input order: the model did not rank them."""
    if report.ranked and max(report.repaired, report.fallback) * 2 > report.ranked:
        err_console.print(
            f"[yellow]warning:[/] of {report.ranked} queries ranked, {report.repaired} got a "
            "listwise answer that had to be repaired (ids missing, repeated or out of range) "
            f"and {report.fallback} came back in their input order: this model did not rank "
            "them; try --strategy pointwise (or setwise) with it"
        )


class _BarProgress:
    """Queries done on one bar; with strategies of many calls a query, its calls on another."""

    def __init__(self, bar: Progress, strategy: str, queries: int, calls: int) -> None:
        self.bar = bar
        self.task = bar.add_task(f"rank ({strategy})", total=queries)
        self.calls = calls
        self.inner = bar.add_task("  this query's model calls", total=calls, visible=calls > 1)

    def __call__(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)
        self.bar.update(self.inner, completed=0, visible=self.calls > 1 and done < total)

    def within(self, done: int, total: int) -> None:
        self.bar.update(self.inner, completed=done, total=total)


def _progress_columns() -> tuple[ProgressColumn, ...]:
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


@click.command(name="eval")
@click.option("--run", "run_path", required=True, type=FILE, help="a TREC run")
@click.option("--qrels", "qrels_path", required=True, type=FILE, help="TREC qrels")
@click.option(
    "--metrics",
    multiple=True,
    default=("nDCG@10",),
    show_default=True,
    help="an ir_measures name (nDCG@10, P@5, R@100, RR, AP, ...); repeat for several",
)
@click.option("--json", "json_out", is_flag=True, help="one JSON object {metric: value}")
def eval_(run_path: Path, qrels_path: Path, metrics: tuple[str, ...], json_out: bool) -> None:
    """Score a TREC run against qrels with ir_measures."""
    from memora.rank.batch import evaluate

    values = evaluate(run_path, qrels_path, metrics)
    if json_out:
        click.echo(json.dumps(values))
        return
    table = Table("metric", "value")
    for name, value in values.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
