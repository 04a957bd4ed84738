# ruff: noqa: E501  (the attack table: one case per line)
"""The attack table of ``memora rank`` and ``memora eval``: bad input gets one typed error
naming the fix and changes nothing; ``--resume`` continues only a run memora wrote with the
same strategy, model and parameters; a run that fails before ranking leaves no files.

Every row runs the real command in a subprocess (see ``tests/attack.py``). Rows that need no
model fail before one loads; the rows that load one use the bundled model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from attack import Case, run_case

from memora.rank.batch import RerankerSpec
from memora.settings import load_settings

QUERIES = [{"qid": "q1", "text": "how is espresso made"}, {"qid": "q2", "text": "why lava"}]
DOCS = [
    {"docid": "d1", "text": "Espresso forces hot water through ground coffee."},
    {"docid": "d2", "text": "Magma rises and erupts from a volcano as lava."},
    {"docid": "d3", "text": "The queen moves any number of squares in chess."},
]
CANDS = "".join(f"{q} Q0 d{i} {i} {10 - i} bm25\n" for q in ("q1", "q2") for i in (1, 2, 3))
RUN = ["rank", "--queries", "{tmp}/q.jsonl", "--docs", "{tmp}/d.jsonl", "--output", "{tmp}/run.trec"]  # fmt: skip
WITH_CANDS = [*RUN, "--candidates", "{tmp}/c.trec"]
DIAG = "run.trec.diagnostics.jsonl"
OUT = ("run.trec", DIAG)


def jsonl(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def files(queries: str | bytes | None = None, docs: str | bytes | None = None,
          cands: str | bytes | None = None, **more: str | bytes) -> Callable[[Path], None]:  # fmt: skip
    """A setup writing q.jsonl, d.jsonl, c.trec (the defaults unless given) and ``more``."""

    def setup(tmp: Path) -> None:
        given = {"q.jsonl": queries, "d.jsonl": docs, "c.trec": cands, **more}
        defaults = {"q.jsonl": jsonl(QUERIES), "d.jsonl": jsonl(DOCS), "c.trec": CANDS}
        for name, content in given.items():
            content = defaults[name] if content is None else content
            path = tmp / name.replace("__", ".")
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")

    return setup


def memora_run(strategy: str, model: str = "default", top_k: int = 100) -> dict[str, str]:
    """run.trec and its diagnostics as ``memora rank --strategy STRATEGY --model MODEL`` (the
    command's defaults otherwise) writes them for both queries, for the setup of resume rows."""
    options = load_settings(model=model, n_ctx=2048, n_threads=1).model_options()
    run = {**RerankerSpec(strategy, model, options).fingerprint(), "top_k": top_k}
    lines, records = [], []
    for qid in ("q1", "q2"):
        lines += [f"{qid} Q0 d{i} {i} {4 - i} memora-{strategy}\n" for i in (1, 2, 3)]
        records.append({"qid": qid, "candidates": 3, "strategy": strategy, "run": run})
    return {"run__trec": "".join(lines), "run__trec__diagnostics__jsonl": jsonl(records)}


def absent(*names: str) -> Callable[[Path], None]:
    def after(tmp: Path) -> None:
        for name in names:
            assert not (tmp / name).exists(), f"{name} was left behind"

    return after


def no_output(tmp: Path) -> None:
    absent(*OUT)(tmp)


LATIN1 = jsonl(QUERIES[:1]).encode() + '{"qid": "q2", "text": "café"}\n'.encode("latin-1")
BINARY = bytes(range(256)) * 4
HUGE = jsonl([{"docid": f"d{i}", "text": f"passage {i}"} for i in range(10_000)])
HUGE_CANDS = "".join(f"q1 Q0 d{i} {i + 1} 0 bm25\n" for i in range(10_000))

CASES = [
    # 1. --resume continues only a run memora wrote, with the same strategy, model, parameters
    Case("resume-another-tools-run", [*WITH_CANDS, "--resume"], files(run__trec="q1 Q0 d1 1 9 bm25\n"), error="NotResumableError", says="another --output", unchanged=("run.trec",), after=absent(DIAG)),
    Case("resume-onto-the-candidates", [*RUN[:-2], "--output", "{tmp}/c.trec", "--candidates", "{tmp}/c.trec", "--resume"], files(), error="NotResumableError", unchanged=("c.trec",), after=absent("c.trec.diagnostics.jsonl")),
    Case("resume-onto-the-queries", [*RUN[:-1], "{tmp}/q.jsonl", "--candidates", "{tmp}/c.trec", "--resume"], files(), error="NotResumableError", unchanged=("q.jsonl",)),
    Case("resume-another-strategy", [*WITH_CANDS, "--resume", "--strategy", "full"], files(**memora_run("pointwise")), error="NotResumableError", says="strategy 'pointwise'", unchanged=OUT),
    Case("resume-default-onto-biencoder", [*WITH_CANDS, "--resume"], files(**memora_run("biencoder")), error="NotResumableError", says="strategy 'biencoder'", unchanged=OUT),
    Case("resume-another-model", [*WITH_CANDS, "--resume", "--strategy", "pointwise", "--model", "{tmp}/other.gguf"], files(**memora_run("pointwise")), error="NotResumableError", says="model 'default'", unchanged=OUT),
    Case("resume-another-top-k", [*WITH_CANDS, "--resume", "--strategy", "pointwise", "--top-k", "2"], files(**memora_run("pointwise")), error="NotResumableError", says="top_k 100", unchanged=OUT),
    Case("resume-another-n-ctx", [*WITH_CANDS, "--resume", "--strategy", "pointwise", "--n-ctx", "1024"], files(**memora_run("pointwise")), error="NotResumableError", says="model_options", unchanged=OUT),
    Case("resume-foreign-diagnostics", [*WITH_CANDS, "--resume"], files(run__trec="", run__trec__diagnostics__jsonl="not json\nat all\n"), error="NotResumableError", unchanged=OUT),
    Case("resume-diagnostics-of-another-shape", [*WITH_CANDS, "--resume"], files(run__trec="", run__trec__diagnostics__jsonl='{"qid": "q1", "candidates": "three"}\n{"qid": "q2"}\n'), error="NotResumableError", unchanged=OUT),
    Case("resume-binary-diagnostics", [*WITH_CANDS, "--resume"], files(run__trec__diagnostics__jsonl=BINARY), error="NotResumableError", unchanged=(DIAG,)),
    Case("resume-same-options-finished", [*WITH_CANDS, "--resume", "--strategy", "pointwise"], files(**memora_run("pointwise")), error=None, unchanged=OUT),
    Case("resume-threads-may-change", [*WITH_CANDS, "--resume", "--strategy", "pointwise", "--threads", "2"], files(**memora_run("pointwise")), error=None, unchanged=OUT),
    Case("no-resume-existing-output", WITH_CANDS, files(**memora_run("pointwise")), error="OutputExistsError", says="--resume", unchanged=OUT),
    # 2. qids and docids must be TREC ids; a run that fails before ranking leaves no files
    Case("qid-with-a-space", RUN, files(queries=jsonl([{"qid": "q 1", "text": "espresso"}])), error="BatchInputError", says="q.jsonl:1: \"qid\" 'q 1' contains whitespace", after=no_output),
    Case("qid-with-a-tab", RUN, files(queries=jsonl([{"qid": "q\t1", "text": "espresso"}])), error="BatchInputError", says="whitespace", after=no_output),
    Case("qid-empty", RUN, files(queries=jsonl([{"qid": "", "text": "espresso"}])), error="BatchInputError", says='q.jsonl:1: "qid" is empty', after=no_output),
    Case("docid-with-a-space", RUN, files(docs=jsonl([*DOCS, {"docid": "d 4", "text": "x"}])), error="BatchInputError", says="d.jsonl:4: \"docid\" 'd 4' contains whitespace", after=no_output),
    Case("jsonl-candidates-docid-with-a-space", [*RUN, "--candidates", "{tmp}/c.jsonl"], files(c__jsonl=jsonl([{"qid": "q1", "docids": ["d1", "d 2"]}])), error="BatchInputError", says="c.jsonl:1:", after=no_output),
    Case("jsonl-candidates-qid-with-a-space", [*RUN, "--candidates", "{tmp}/c.jsonl"], files(c__jsonl=jsonl([{"qid": "q 1", "docid": "d1"}])), error="BatchInputError", says="whitespace", after=no_output),
    Case("no-queries", RUN, files(queries="\n\n"), error="BatchInputError", says="q.jsonl: holds no queries", after=no_output),
    Case("no-query-has-candidates", WITH_CANDS, files(cands="q9 Q0 d1 1 1 bm25\n"), error="BatchInputError", says="check that the qids match", after=no_output),
    Case("model-missing-leaves-no-files", [*WITH_CANDS, "--strategy", "pointwise", "--model", "{tmp}/missing.gguf"], files(), error="ModelNotFoundError", after=no_output),
    # 3. files that are not UTF-8 text, or lines that are not JSON, name file:line
    Case("queries-latin-1", RUN, files(queries=LATIN1), error="BatchInputError", says="q.jsonl:2: not UTF-8", after=no_output),
    Case("queries-binary", RUN, files(queries=BINARY), error="BatchInputError", says="q.jsonl:1:", after=no_output),
    Case("docs-binary", RUN, files(docs=BINARY), error="BatchInputError", says="d.jsonl:1:", after=no_output),
    Case("docs-nul-bytes", RUN, files(docs=b'{"docid": "d1", "text": "a\x00b"}\n'), error="BatchInputError", says="d.jsonl:1: a NUL byte", after=no_output),
    Case("candidates-not-utf-8", WITH_CANDS, files(cands=CANDS.encode() + b"q1 Q0 d\xe9 4 1 bm25\n"), error="BatchInputError", says="c.trec:7: not UTF-8", after=no_output),
    Case("queries-line-not-json", RUN, files(queries=jsonl(QUERIES) + '{"qid": "q3", "text": \n'), error="BatchInputError", says="q.jsonl:3: not JSON", after=no_output),
    Case("docs-line-not-an-object", RUN, files(docs=jsonl(DOCS) + "[1, 2]\n"), error="BatchInputError", says="d.jsonl:4: expected a JSON object", after=no_output),
    Case("eval-run-not-utf-8", ["eval", "--run", "{tmp}/r.trec", "--qrels", "{tmp}/qrels"], files(r__trec=b"q1 Q0 d\xff 1 1 x\n", qrels="q1 0 d1 1\n"), error="BatchInputError", says="r.trec:1: not UTF-8", unchanged=("r.trec",)),
    Case("eval-qrels-binary", ["eval", "--run", "{tmp}/r.trec", "--qrels", "{tmp}/qrels"], files(r__trec="q1 Q0 d1 1 1 x\n", qrels=BINARY), error="BatchInputError", says="qrels:1:", unchanged=("qrels",)),
    Case("eval-run-empty", ["eval", "--run", "{tmp}/r.trec", "--qrels", "{tmp}/qrels"], files(r__trec="\n", qrels="q1 0 d1 1\n"), error="BatchInputError", says="holds no lines"),
    Case("eval-qrels-bad-line", ["eval", "--run", "{tmp}/r.trec", "--qrels", "{tmp}/qrels"], files(r__trec="q1 Q0 d1 1 1 x\n", qrels="q1 0 d1 1\nq1 d2\n"), error="BatchInputError", says="qrels:2: expected 4 fields"),
    # 5. a query's cost is bounded before anything runs (10,000 candidates: not run)
    Case("sliding-10000-candidates-refused", [*RUN[:4], "{tmp}/huge.jsonl", *RUN[5:], "--candidates", "{tmp}/huge.trec", "--strategy", "sliding", "--top-k", "10000"], files(huge__jsonl=HUGE, huge__trec=HUGE_CANDS), error="InvalidOptionError", says="about 999 model calls", after=no_output),
    Case("pointwise-over-max-calls-refused", [*WITH_CANDS, "--strategy", "pointwise", "--max-calls", "2"], files(), error="InvalidOptionError", says="--max-calls 3", after=no_output),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_attack(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)


def test_the_run_says_which_strategy_it_chose(tmp_path: Path) -> None:
    """The default (auto) is said on stderr; here every query is done, so no model loads."""
    case = Case(
        "auto-resumes-pointwise", [*WITH_CANDS, "--resume"], files(**memora_run("pointwise"))
    )
    done = run_case(case, tmp_path)
    assert "strategy: pointwise (auto: a local model scores each candidate" in done.stderr
    assert "ranked 0 queries (2 done before)" in done.stderr


def test_a_model_that_did_not_rank_is_reported_at_the_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from memora.cli.rank import _say_how_it_went
    from memora.rank.batch import BatchReport

    _say_how_it_went(BatchReport(4, 0, 4, Path("r"), Path("d"), repaired=1, fallback=3))
    said = " ".join(capsys.readouterr().err.split())
    assert "of 4 queries ranked, 1 got a listwise answer that had to be repaired" in said
    assert "3 came back in their input order" in said and "--strategy pointwise" in said
    _say_how_it_went(BatchReport(4, 0, 4, Path("r"), Path("d"), repaired=2, fallback=1))
    assert capsys.readouterr().err == ""  # half or fewer: no warning
