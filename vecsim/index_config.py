"""Vector index configurations, as typed models (Milvus names and parameters).

Each config carries its build parameters and its search parameters. Which engine can build
which type is the adapter's business (see ``adapters/``); these models only validate values.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import IndexConfigError


class Metric(str, Enum):
    COSINE = "COSINE"
    IP = "IP"


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    metric: Metric = Metric.COSINE

    def build_params(self) -> dict[str, Any]:
        return {}

    def search_params(self) -> dict[str, Any]:
        return {}


class FlatIndex(_Base):
    """Exact (brute-force) search. Best recall, linear cost: right up to ~1M frames."""

    type: Literal["FLAT"] = "FLAT"


class IvfFlatIndex(_Base):
    """Inverted file: ``nlist`` clusters, ``nprobe`` of them scanned per query."""

    type: Literal["IVF_FLAT"] = "IVF_FLAT"
    nlist: int = Field(1024, ge=1, le=65536)
    nprobe: int = Field(16, ge=1, le=65536)

    def build_params(self) -> dict[str, Any]:
        return {"nlist": self.nlist}

    def search_params(self) -> dict[str, Any]:
        return {"nprobe": self.nprobe}


class _Rescored(BaseModel):
    """A compressed index searched first, its candidates then re-scored with the exact vectors:
    ``oversampling`` x the wanted number of candidates are fetched and re-ranked (``rerank``)."""

    rerank: bool = True
    oversampling: float = Field(4.0, ge=1.0, le=64.0)


class IvfSq8Index(_Rescored, IvfFlatIndex):
    """IVF with 8-bit scalar quantization: 4x smaller vectors."""

    type: Literal["IVF_SQ8"] = "IVF_SQ8"  # type: ignore[assignment]
    rerank: bool = False


class IvfPqIndex(_Rescored, IvfFlatIndex):
    """IVF with product quantization: ``m`` sub-vectors of ``nbits`` each (``m`` must divide dim),
    so ``m * nbits / 8`` bytes per vector; candidates re-ranked with exact vectors by default."""

    type: Literal["IVF_PQ"] = "IVF_PQ"  # type: ignore[assignment]
    m: int = Field(64, ge=1)
    nbits: int = Field(8, ge=1, le=16)
    # Measured at 50k vectors (docs/benchmark.md): with these, IVF_PQ m=64 stays within 0.01 of
    # FLAT on every detection metric; nprobe 32 with oversampling 4 lost 0.012 Recall@1.
    nprobe: int = Field(64, ge=1, le=65536)
    oversampling: float = Field(10.0, ge=1.0, le=64.0)

    def build_params(self) -> dict[str, Any]:
        return {"nlist": self.nlist, "m": self.m, "nbits": self.nbits}


class HnswIndex(_Base):
    """Graph index: ``M`` links per node, ``efConstruction`` at build, ``ef`` at search."""

    type: Literal["HNSW"] = "HNSW"
    M: int = Field(16, ge=2, le=2048)
    efConstruction: int = Field(200, ge=1)
    ef: int = Field(64, ge=1)

    def build_params(self) -> dict[str, Any]:
        return {"M": self.M, "efConstruction": self.efConstruction}

    def search_params(self) -> dict[str, Any]:
        return {"ef": self.ef}


class HnswSq8Index(_Rescored, HnswIndex):
    """HNSW over 8-bit scalar-quantized vectors (1 byte per dimension), re-scored with the exact
    vectors. Milvus >= 2.6 ``HNSW_SQ``; Qdrant HNSW with int8 scalar quantization."""

    type: Literal["HNSW_SQ8"] = "HNSW_SQ8"  # type: ignore[assignment]
    oversampling: float = Field(2.0, ge=1.0, le=64.0)


class HnswPqIndex(_Rescored, HnswIndex):
    """HNSW over product-quantized vectors: ``m`` bytes per vector, re-scored with the exact
    vectors. Milvus >= 2.6 ``HNSW_PQ`` (``m`` sub-vectors of 8 bits); Qdrant HNSW with product
    quantization of compression ``4 * dim / m`` (4, 8, 16, 32 or 64). The default, 64 bytes,
    suits the default 256-d descriptor on both (1280-d vectors take m=80 on Qdrant)."""

    type: Literal["HNSW_PQ"] = "HNSW_PQ"  # type: ignore[assignment]
    m: int = Field(64, ge=1)


IndexConfig = Annotated[
    Union[FlatIndex, IvfFlatIndex, IvfSq8Index, IvfPqIndex, HnswIndex, HnswSq8Index, HnswPqIndex],
    Field(discriminator="type"),
]
INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "HNSW_SQ8", "HNSW_PQ")
_adapter: TypeAdapter[IndexConfig] = TypeAdapter(IndexConfig)


def parse_index_config(index_type: str = "FLAT", params: dict[str, Any] | None = None) -> IndexConfig:
    """Build a config from a type name and ``KEY=VALUE``-style parameters (values may be strings)."""
    name = index_type.strip().upper()
    if name not in INDEX_TYPES:
        raise IndexConfigError(f"unknown index type {index_type!r}; choose one of {', '.join(INDEX_TYPES)}")
    try:
        return _adapter.validate_python({"type": name, **(params or {})})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()
        )
        raise IndexConfigError(f"invalid {name} parameters: {problems}") from None


def index_config_from_dict(data: dict[str, Any]) -> IndexConfig:
    return _adapter.validate_python(data)


def parse_param_pairs(pairs: list[str]) -> dict[str, str]:
    """``["nlist=128", "nprobe=8"]`` -> ``{"nlist": "128", "nprobe": "8"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise IndexConfigError(f"index parameter {pair!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out
