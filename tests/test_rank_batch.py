"""Batch ranking: files in, a TREC run out, resumable per query, the same on Ray."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import fields
from pathlib import Path
from typing import Any

import ir_measures
import pytest
from click.testing import CliRunner

from memora.cli import main
from memora.cli.rank import rank
from memora.errors import (
    ClosedError,
    InvalidOptionError,
    InvalidRecordError,
    ModelNotFoundError,
    NotResumableError,
)
from memora.rank.batch import (
    BatchInputError,
    OutputExistsError,
    Query,
    RankConfig,
    RerankerSpec,
    check_cost,
    diagnostics_path,
    load_inputs,
    read_candidates,
    read_docs,
    read_queries,
    run_batch,
    run_lines,
    run_ranking,
)
from memora.rank.rerankers import load_reranker
from memora.rank.spec import estimate_calls
from memora.rank.types import Diagnostics, Doc, Ranking
from memora.testing import ScriptedLLM

TOPICS = {
    "coffee": [
        "Espresso is brewed by forcing hot water through finely ground coffee beans.",
        "Arabica coffee plants grow best at high altitudes in tropical climates.",
        "A barista steams milk to pour latte art on top of a cappuccino.",
    ],
    "volcano": [
        "Magma rises through the crust and erupts from a volcano as lava.",
        "Mount Etna in Sicily is one of the most active volcanoes in Europe.",
        "Volcanic ash clouds can ground flights across a whole continent.",
    ],
    "chess": [
        "The queen is the most powerful piece on the chess board.",
        "Castling moves the king two squares towards a rook in chess.",
        "Grandmasters study chess openings such as the Sicilian Defence.",
    ],
    "python": [
        "Python lists are dynamic arrays that grow when items are appended.",
        "A Python decorator wraps a function to change its behaviour.",
        "The Python interpreter compiles source code to bytecode first.",
    ],
}
QUERIES = {
    "coffee": "how is espresso coffee made",
    "volcano": "why do volcanoes erupt lava",
    "chess": "how does the queen move in chess",
    "python": "what is a decorator in python programming",
}


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def collection(tmp_path: Path) -> dict[str, Path]:
    """queries.jsonl, docs.jsonl and qrels.txt of the four topics."""
    docs, qrels = [], []
    for topic, texts in TOPICS.items():
        for i, text in enumerate(texts):
            docs.append({"docid": f"{topic}-{i}", "text": text})
            qrels.append(f"q-{topic} 0 {topic}-{i} 1\n")
    queries = [{"qid": f"q-{t}", "text": q} for t, q in QUERIES.items()]
    (tmp_path / "qrels.txt").write_text("".join(qrels), encoding="utf-8")
    return {
        "queries": write_jsonl(tmp_path / "queries.jsonl", queries),
        "docs": write_jsonl(tmp_path / "docs.jsonl", docs),
        "qrels": tmp_path / "qrels.txt",
    }


def cli(*args: Any) -> Any:
    result = CliRunner().invoke(main, [str(a) for a in args])
    result.text = result.output.replace("\n", "")  # error lines are wrapped at 80 columns
    return result


def read_run(path: Path) -> dict[str, list[tuple[str, int, float, str]]]:
    """qid -> [(docid, rank, score, tag)] in file order; checks the 6-field format."""
    out: dict[str, list[tuple[str, int, float, str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        qid, q0, docid, rank, score, tag = line.split(" ")
        assert q0 == "Q0"
        out.setdefault(qid, []).append((docid, int(rank), float(score), tag))
    return out


def check_run(path: Path, per_query: int) -> dict[str, list[tuple[str, int, float, str]]]:
    run = read_run(path)
    for rows in run.values():
        assert [r[1] for r in rows] == list(range(1, per_query + 1))
        scores = [r[2] for r in rows]
        assert all(a > b for a, b in itertools.pairwise(scores)), scores
        assert len({r[0] for r in rows}) == per_query
    return run


def diag_qids(path: Path) -> list[str]:
    lines = diagnostics_path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["qid"] for line in lines]


def test_cli_ranks_and_evaluates(tmp_path: Path) -> None:
    files = collection(tmp_path)
    out = tmp_path / "run.trec"
    result = cli("rank", "--queries", files["queries"], "--docs", files["docs"], "--output", out,
                 "--strategy", "biencoder", "--top-k", 5)  # fmt: skip
    assert result.exit_code == 0, result.output
    # 12 docs, top-k 5: the bi-encoder pre-selects 5 candidates per query
    run = check_run(out, 5)
    assert sorted(run) == sorted(f"q-{t}" for t in TOPICS)
    assert {r[3] for rows in run.values() for r in rows} == {"memora-biencoder"}
    for topic in TOPICS:
        assert run[f"q-{topic}"][0][0].startswith(topic)  # an easy collection
    assert len(list(ir_measures.read_trec_run(str(out)))) == 20
    assert sorted(diag_qids(out)) == sorted(run)

    result = cli("eval", "--run", out, "--qrels", files["qrels"])
    assert result.exit_code == 0, result.output
    assert "nDCG@10" in result.output
    result = cli("eval", "--run", out, "--qrels", files["qrels"], "--metrics", "nDCG@10",
                 "--metrics", "P@3", "--json")  # fmt: skip
    values = json.loads(result.output)
    assert set(values) == {"nDCG@10", "P@3"} and values["nDCG@10"] > 0.9
    result = cli("eval", "--run", out, "--qrels", files["qrels"], "--metrics", "nDGC@10")
    assert result.exit_code == 1 and "unknown metric 'nDGC@10'" in result.text

    # an existing output is never overwritten silently
    result = cli("rank", "--queries", files["queries"], "--docs", files["docs"], "--output", out,
                 "--strategy", "biencoder")  # fmt: skip
    assert result.exit_code == 1 and "OutputExistsError" in result.text
    assert "--resume" in result.text
    before = out.read_text()
    result = cli("rank", "--queries", files["queries"], "--docs", files["docs"], "--output", out,
                 "--strategy", "biencoder", "--top-k", 5, "--resume")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_text() == before and "ranked 0 queries (4 done before)" in result.text


def test_malformed_query_lines_fail_or_skip(tmp_path: Path) -> None:
    files = collection(tmp_path)
    lines = files["queries"].read_text().splitlines()
    lines.insert(1, '{"qid": "bad", "text": "unclosed}')
    lines.insert(3, '{"text": "no qid here"}')
    files["queries"].write_text("\n".join(lines) + "\n")
    out = tmp_path / "run.trec"
    base = ("rank", "--queries", files["queries"], "--docs", files["docs"], "--output", out,
            "--strategy", "biencoder", "--top-k", 3)  # fmt: skip
    result = cli(*base, "--on-error", "fail")
    assert result.exit_code == 1
    assert "BatchInputError" in result.text and "queries.jsonl:2: not JSON" in result.text
    assert not out.exists()

    result = cli(*base, "--on-error", "skip")
    assert result.exit_code == 0, result.output
    assert "queries.jsonl:2: not JSON" in result.text
    assert 'queries.jsonl:4: missing "qid"' in result.text
    assert sorted(check_run(out, 3)) == sorted(f"q-{t}" for t in TOPICS)


def test_readers_name_the_line(tmp_path: Path) -> None:
    docs_path = write_jsonl(
        tmp_path / "docs.jsonl", [{"docid": "a", "text": "x"}, {"docid": "b", "text": "y"}]
    )
    docs = read_docs(docs_path)
    trec = tmp_path / "cands.trec"
    trec.write_text("q1 Q0 b 1 9 bm25\nq1 Q0 a 2 8 bm25\nq1 Q0 zz 3 7 bm25\nq2 Q0 a\n")
    with pytest.raises(BatchInputError, match=r"cands.trec:4: expected 6 fields") as info:
        read_candidates(trec, docs)
    assert isinstance(info.value, InvalidRecordError) and info.value.line == 4
    warnings: list[str] = []
    cands = read_candidates(trec, docs, on_error="skip", warnings=warnings)
    assert {q: [d.id for d in ds] for q, ds in cands.items()} == {"q1": ["b", "a"]}
    assert len(warnings) == 2 and "cands.trec:3: docid 'zz' (qid 'q1') is not in" in warnings[1]
    trec.write_text("q1 Q0 b 1 9 bm25\nq1 Q0 zz 2 8 bm25\n")
    with pytest.raises(BatchInputError, match=r"cands.trec:2: docid 'zz'"):
        read_candidates(trec, docs)

    jsonl = write_jsonl(
        tmp_path / "cands.jsonl", [{"qid": "q1", "docids": ["a", "b"]}, {"qid": 2, "docid": "b"}]
    )
    cands = read_candidates(jsonl, docs)
    assert {q: [d.id for d in ds] for q, ds in cands.items()} == {"q1": ["a", "b"], "2": ["b"]}

    queries = write_jsonl(tmp_path / "q.jsonl", [{"qid": "1", "query": "x"}, {"qid": "1"}])
    with pytest.raises(BatchInputError, match=r'q.jsonl:2: missing "text"'):
        read_queries(queries)
    assert read_queries(queries, on_error="skip") == [Query("1", "x")]


def test_scores_follow_rank_even_when_tied() -> None:
    diag = Diagnostics("x")
    lines, model = run_lines("q", Ranking(("a", "b", "c"), (0.5, 0.5, 0.1), diag), "t")
    assert not model and [line.split()[4] for line in lines] == ["3", "2", "1"]
    lines, model = run_lines("q", Ranking(("a", "b"), (0.75, -1e-9), diag), "t")
    assert model and [float(line.split()[4]) for line in lines] == [0.75, -1e-9]
    lines, model = run_lines("q", Ranking(("a", "b"), None, diag), "t")
    assert not model and lines == ["q Q0 a 1 2 t\n", "q Q0 b 2 1 t\n"]


def test_resume_drops_a_partial_write(tmp_path: Path) -> None:
    files = collection(tmp_path)
    inputs = load_inputs(files["queries"], docs=files["docs"], top_k=4)
    out = tmp_path / "run.trec"
    spec = RerankerSpec("biencoder")
    run_batch(inputs.queries[:2], inputs.candidates, spec, out, top_k=4)
    full = out.read_text()
    done = diag_qids(out)
    # a kill in the middle of the third query: two run lines, a half diagnostics line
    third = inputs.queries[2].qid
    with out.open("a") as fh:
        fh.write(f"{third} Q0 x 1 1.0 t\n{third} Q0 y 2 0.5 t\n{third} Q0 z 3")
    with diagnostics_path(out).open("a") as fh:
        fh.write('{"qid": "' + third)
    with pytest.raises(OutputExistsError):
        run_batch(inputs.queries, inputs.candidates, spec, out, top_k=4)
    seen: list[tuple[int, int]] = []
    report = run_batch(
        inputs.queries,
        inputs.candidates,
        spec,
        out,
        top_k=4,
        resume=True,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert (report.ranked, report.resumed, report.total) == (2, 2, 4)
    assert seen == [(2, 4), (3, 4), (4, 4)]
    assert out.read_text().startswith(full)
    assert diag_qids(out)[:2] == done and Counter(diag_qids(out)) == Counter(
        q.qid for q in inputs.queries
    )
    check_run(out, 4)


def test_long_documents_are_ranked_by_passages(tmp_path: Path) -> None:
    filler = "Gardeners water their tomatoes early in the morning. " * 40  # 320 words
    coffee = " ".join(TOPICS["coffee"]) * 2
    docs = [{"docid": "long", "text": filler + coffee}]
    docs += [{"docid": "short", "text": "Lava erupts from a volcano."}]
    files = {
        "queries": write_jsonl(tmp_path / "q.jsonl", [{"qid": "1", "text": "espresso coffee"}]),
        "docs": write_jsonl(tmp_path / "d.jsonl", docs),
    }
    out = tmp_path / "run.trec"
    result = cli("rank", "--queries", files["queries"], "--docs", files["docs"], "--output", out,
                 "--strategy", "biencoder")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "passages of 190 words" in result.output
    assert [r[0] for r in read_run(out)["1"]] == ["long", "short"]
    record = json.loads(diagnostics_path(out).read_text())
    assert record["strategy"] == "biencoder+maxp"


def test_llm_strategy_ranks_in_batch(tmp_path: Path, local_llm: Any) -> None:
    files = collection(tmp_path)
    inputs = load_inputs(files["queries"], docs=files["docs"], top_k=5)
    out = tmp_path / "run.trec"
    report = run_batch(
        inputs.queries[:2], inputs.candidates, lambda: load_reranker("setwise", local_llm),
        out, top_k=5,
    )  # fmt: skip
    assert report.ranked == 2
    run = check_run(out, 5)
    for query in inputs.queries[:2]:
        assert sorted(r[0] for r in run[query.qid]) == sorted(
            d.id for d in inputs.candidates[query.qid]
        )
        assert {r[3] for r in run[query.qid]} == {"memora-setwise"}
    records = diagnostics_path(out).read_text().splitlines()
    assert all(json.loads(line)["calls"] == 1 for line in records)
    local_llm.count_tokens("still open")  # the caller's model is not closed by run_batch


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path: Path) -> None:
    padding = " ".join(["the passage goes on about other matters"] * 12)
    docs, cands, queries = [], [], []
    for q in range(8):
        queries.append({"qid": f"q{q}", "text": f"question number {q} about topic {q}"})
        for d in range(6):
            docs.append({"docid": f"d{q}-{d}", "text": f"topic {q} answer {d}. {padding}"})
            cands.append(f"q{q} Q0 d{q}-{d} {d + 1} {10 - d} bm25\n")
    write_jsonl(tmp_path / "q.jsonl", queries)
    write_jsonl(tmp_path / "d.jsonl", docs)
    (tmp_path / "c.trec").write_text("".join(cands))
    out = tmp_path / "run.trec"
    cmd = [sys.executable, "-m", "memora.cli", "rank", "--queries", str(tmp_path / "q.jsonl"),
           "--docs", str(tmp_path / "d.jsonl"), "--candidates", str(tmp_path / "c.trec"),
           "--output", str(out), "--strategy", "pointwise", "--top-k", "5", "--threads", "1",
           "--passage-words", "0"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    diag = diagnostics_path(out)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (diag.exists() and diag.read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no query finished in 120 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = diag_qids(out)
    assert 2 <= len(first) < 8, "the run finished before the kill; make queries slower"

    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"ranked {8 - len(first)} queries ({len(first)} done before)" in done.stderr
    qids = diag_qids(out)
    assert qids[: len(first)] == first  # finished queries were not redone
    assert Counter(qids) == Counter(f"q{q}" for q in range(8))  # each exactly once
    run = check_run(out, 5)
    assert sorted(run) == sorted(f"q{q}" for q in range(8))
    assert {r[3] for rows in run.values() for r in rows} == {"memora-pointwise"}


@pytest.mark.slow
def test_ray_executor_matches_local(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    files = collection(tmp_path)
    inputs = load_inputs(files["queries"], docs=files["docs"], top_k=6)
    spec = RerankerSpec("biencoder")
    local, remote = tmp_path / "local.trec", tmp_path / "ray.trec"
    run_batch(inputs.queries, inputs.candidates, spec, local, top_k=6)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = run_batch(
            inputs.queries, inputs.candidates, spec, remote, top_k=6, executor="ray", workers=2
        )
    finally:
        ray.shutdown()
    assert report.ranked == 4

    def lines(path: Path) -> list[tuple[str, int, str]]:
        rows = [line.split() for line in path.read_text().splitlines()]
        return sorted((r[0], int(r[3]), r[2]) for r in rows)

    assert lines(remote) == lines(local)
    local_scores = {(q, r[0]): r[2] for q, rows in read_run(local).items() for r in rows}
    for q, rows in read_run(remote).items():
        for r in rows:
            assert r[2] == pytest.approx(local_scores[(q, r[0])], abs=1e-5)
    assert sorted(diag_qids(remote)) == sorted(diag_qids(local))


def test_the_rank_command_options_are_the_config_fields() -> None:
    assert [p.name for p in rank.params] == [
        "queries_path", "docs_path", "candidates_path", "output", "strategy", "model_spec",
        "top_k", "executor", "workers", "address", "resume", "on_error", "threads", "n_ctx",
        "passage_words", "max_calls",
    ]  # fmt: skip
    assert {p.name for p in rank.params} == {f.name for f in fields(RankConfig)}
    # the config's defaults are the command's (a flag's default is click's own sentinel)
    defaults = {p.name: p.default for p in rank.params if not p.required and not p.is_flag}
    config = RankConfig(Path("q"), Path("d"), Path("o"))
    assert defaults == {name: getattr(config, name) for name in defaults}
    assert "resume" not in defaults and config.resume is False


def test_a_built_reranker_closes_the_model_it_loaded() -> None:
    spec = RerankerSpec("full", model_options={"n_ctx": 512, "n_threads": 1}, passage_words=40)
    reranker = spec.build()
    assert reranker.name == "full+maxp"
    ranking = reranker.rank("espresso", TOPICS["coffee"])
    assert sorted(ranking.ids) == ["0", "1", "2"]
    llm = reranker.inner.llm  # type: ignore[attr-defined]
    reranker.close()
    with pytest.raises(ClosedError):
        llm.count_tokens("closed")


@pytest.mark.parametrize(
    ("strategy", "options", "sizes"),
    [
        ("sliding", {}, (1, 19, 20, 21, 30, 31, 95)),
        ("sliding", {"window": 4, "step": 3, "passes": 2}, (1, 4, 5, 7, 8, 13)),
        ("psc", {"k": 3}, (1, 6)),
        ("full", {}, (1, 9)),
    ],
)
def test_the_call_estimate_is_the_calls_made(
    strategy: str, options: dict[str, Any], sizes: tuple[int, ...]
) -> None:
    spec = RerankerSpec(strategy, options=options)
    for n in sizes:
        reranker = load_reranker(strategy, ScriptedLLM(["[1] > [2]"]), **options)
        seen: list[tuple[int, int]] = []
        reranker.on_progress(lambda done, total, seen=seen: seen.append((done, total)))
        ranking = reranker.rank("q", [(f"d{i}", f"text {i}") for i in range(n)])
        calls = ranking.diagnostics.calls
        assert spec.estimate_calls([Doc(f"d{i}", "t") for i in range(n)]) == calls, (n, options)
        if strategy != "full":  # progress inside the query: after each call, out of the estimate
            assert seen == [(i, calls) for i in range(1, calls + 1)]
    assert estimate_calls("sliding", 10_000, {}) == 999
    assert estimate_calls("pointwise", 10_000, {}) == 10_000


def test_a_run_over_the_call_limit_is_refused_before_it_starts(tmp_path: Path) -> None:
    files = collection(tmp_path)
    inputs = load_inputs(files["queries"], docs=files["docs"])  # 12 candidates a query
    spec = RerankerSpec("sliding", options={"window": 4, "step": 2})
    assert check_cost(inputs, spec, 12, 5) == 5
    with pytest.raises(InvalidOptionError, match=r"about 5 model calls .* --max-calls 5"):
        check_cost(inputs, spec, 12, 4)
    assert check_cost(inputs, spec, 4, 4) == 1  # --top-k bounds it too
    config = RankConfig(files["queries"], files["docs"], tmp_path / "r.trec", max_calls=4,
                        strategy="sliding")  # fmt: skip
    with pytest.raises(InvalidOptionError):
        run_ranking(config, inputs, RerankerSpec("sliding", options={"window": 4, "step": 2}))
    assert not (tmp_path / "r.trec").exists()


def test_the_default_strategy_is_said_and_ranks(tmp_path: Path) -> None:
    config = RankConfig(Path("q"), Path("d"), Path("o"))
    assert config.strategy == "auto"
    assert config.chosen_strategy("default")[0] == "pointwise"
    assert config.chosen_strategy("openai:gpt-4o-mini")[0] == "full"
    assert RankConfig(Path("q"), Path("d"), Path("o"), strategy="setwise").chosen_strategy(
        "default"
    ) == ("setwise", "asked for")


def test_a_model_that_does_not_rank_is_reported(tmp_path: Path) -> None:
    files = collection(tmp_path)
    inputs = load_inputs(files["queries"], docs=files["docs"])
    llm = ScriptedLLM(["I cannot rank these passages."])
    report = run_batch(inputs.queries, inputs.candidates, lambda: load_reranker("full", llm),
                       tmp_path / "r.trec")  # fmt: skip
    assert (report.ranked, report.repaired, report.fallback) == (4, 4, 4)
    llm = ScriptedLLM(["[2] > [1]"])
    report = run_batch(inputs.queries, inputs.candidates, lambda: load_reranker("full", llm),
                       tmp_path / "s.trec")  # fmt: skip
    assert (report.ranked, report.repaired, report.fallback) == (4, 4, 0)


def test_a_resumed_run_redoes_a_query_whose_lines_are_missing(tmp_path: Path) -> None:
    files = collection(tmp_path)
    inputs = load_inputs(files["queries"], docs=files["docs"], top_k=4)
    out, spec = tmp_path / "run.trec", RerankerSpec("biencoder")
    run_batch(inputs.queries, inputs.candidates, spec, out, top_k=4)
    first = inputs.queries[0].qid
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(line for line in lines if not line.startswith(first + " ")))
    report = run_batch(inputs.queries, inputs.candidates, spec, out, top_k=4, resume=True)
    assert (report.ranked, report.resumed) == (1, 3)
    assert Counter(diag_qids(out)) == Counter(q.qid for q in inputs.queries)
    assert sorted(check_run(out, 4)) == sorted(q.qid for q in inputs.queries)
    with pytest.raises(NotResumableError, match="top_k 4"):
        run_batch(inputs.queries, inputs.candidates, spec, out, top_k=3, resume=True)


def test_a_run_that_fails_before_ranking_leaves_no_files(tmp_path: Path) -> None:
    files = collection(tmp_path)
    inputs = load_inputs(files["queries"], docs=files["docs"], top_k=4)
    out = tmp_path / "run.trec"

    def broken() -> Any:
        raise ModelNotFoundError("no model")

    with pytest.raises(ModelNotFoundError):
        run_batch(inputs.queries, inputs.candidates, broken, out, top_k=4)
    assert not out.exists() and not diagnostics_path(out).exists()
    run_batch(inputs.queries, inputs.candidates, RerankerSpec("biencoder"), out, top_k=4)
    assert len(check_run(out, 4)) == 4


def test_ids_must_be_trec_ids(tmp_path: Path) -> None:
    with pytest.raises(InvalidRecordError, match="whitespace"):
        run_batch([Query("a b", "x")], {"a b": [Doc("d", "t")]}, RerankerSpec("biencoder"),
                  tmp_path / "r.trec")  # fmt: skip
    assert not (tmp_path / "r.trec").exists()


def test_progress_inside_a_query_reaches_the_caller(tmp_path: Path) -> None:
    files = collection(tmp_path)
    inputs = load_inputs(files["queries"], docs=files["docs"])  # 12 candidates a query
    llm = ScriptedLLM(["[2] > [1]"])

    class Progress:
        def __init__(self) -> None:
            self.queries: list[tuple[int, int]] = []
            self.calls: list[tuple[int, int]] = []

        def __call__(self, done: int, total: int) -> None:
            self.queries.append((done, total))

        def within(self, done: int, total: int) -> None:
            self.calls.append((done, total))

    progress = Progress()
    run_batch(inputs.queries[:2], inputs.candidates,
              lambda: load_reranker("sliding", llm, window=4, step=2), tmp_path / "r.trec",
              progress=progress)  # fmt: skip
    assert progress.queries == [(0, 2), (1, 2), (2, 2)]
    assert progress.calls == [(i, 5) for i in range(1, 6)] * 2  # 12 candidates: 5 windows
