"""Read a document far longer than the model's context and answer a question about it.

A passkey sentence is hidden in generated filler about 12x the model's 2,048-token context. The
long-context reader keeps a 128-token window and files older chunks into a bounded memory bank
(64 chunks of 64 tokens, surprise eviction); the question is answered from the 2 retrieved
chunks, once re-evaluated as text and once attended from cached keys and values (KV bank).

    python examples/long_document.py [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memora.llm import load_model
from memora.memory import KVMemoryBank, LongContextReader, MemoryBank

SUBJECTS = ["The porter", "A gull", "The ferry", "Old Nils", "The baker", "A storm", "The mayor"]
VERBS = ["crossed", "watched", "painted", "counted", "mended", "forgot", "visited"]
OBJECTS = ["the harbour wall", "twelve boats", "the lighthouse", "a red door", "the market",
           "the north pier", "a box of nails"]  # fmt: skip
WHEN = ["on Monday", "at dawn", "before the rain", "after lunch", "in the spring", "at night"]


def document(sentences: int, depth: float, key: str, seed: int = 0) -> str:
    rng = random.Random(seed)
    filler = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
              f"{rng.choice(WHEN)}." for _ in range(sentences)]  # fmt: skip
    filler.insert(
        int(depth * sentences), f"The pass key is {key}. Remember it. {key} is the pass key."
    )
    return " ".join(filler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    key = "40718"
    text = document(2500, 0.3, key)
    question = "What is the pass key?"

    llm = load_model("default", n_ctx=2048, n_threads=args.threads)
    bank = MemoryBank(tokenizer=llm, chunk_tokens=64, capacity=64, eviction="surprise")
    reader = LongContextReader(llm, bank, window_tokens=128, k=2)
    reader.read(text)
    print(f"read {reader.read_tokens} tokens ({reader.read_tokens / llm.n_ctx:.1f}x the context)")
    answer = reader.ask(question)
    print(f"text bank: {answer.text!r}; evaluated {answer.evaluated_tokens} prompt tokens; "
          f"passkey retrieved: {any(key in c.text for c in answer.chunks)}")  # fmt: skip
    llm.close()

    kv_llm = load_model("default", n_ctx=4800, n_threads=args.threads)
    with kv_llm, KVMemoryBank(kv_llm, chunk_tokens=64, capacity=64, eviction="surprise") as kv:
        reader = LongContextReader(kv_llm, kv, window_tokens=128, k=2)
        reader.read(text)
        answer = reader.ask(question)
        print(f"KV bank: {answer.text!r}; evaluated {answer.evaluated_tokens} prompt tokens "
              f"({kv.filed_tokens} decoded once while reading); "
              f"passkey retrieved: {any(key in c.text for c in answer.chunks)}")  # fmt: skip


if __name__ == "__main__":
    main()
