"""The benchmarks: how well, and how fast, does an index find edited copies?

- :mod:`vecsim.bench.corpus`: the DISC21-style split of a photo folder and its cached descriptor
  corpus (references, distractors, edited queries);
- :mod:`vecsim.bench.images`: the image benchmark (``vecsim bench images``);
- :mod:`vecsim.bench.index`: the index benchmark, one backend and index config at scale
  (``vecsim bench index``);
- :mod:`vecsim.bench.scale`: the scaling benchmark, one collection grown through sizes on
  synthetic vectors (``vecsim bench scale``);
- :mod:`vecsim.bench.videos`: the video benchmark (``vecsim bench videos``);
- :mod:`vecsim.bench.report`: writing reports, markdown tables, percentiles.

Every query goes through the query path of :class:`~vecsim.CustomIndex` (:mod:`vecsim.search`),
and a benchmark reads the index only through its public read-only ``store``.
"""

from .images import ImageBenchReport, run_image_bench
from .index import IndexBenchReport, run_index_bench
from .report import write_report
from .scale import ScaleBenchReport, run_scale_bench
from .videos import VideoBenchReport, run_video_bench

__all__ = ["ImageBenchReport", "IndexBenchReport", "ScaleBenchReport", "VideoBenchReport", "run_image_bench",
           "run_index_bench", "run_scale_bench", "run_video_bench", "write_report"]
