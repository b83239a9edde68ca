"""The ``vecsim`` command line.

Exit codes: 0 success, 1 an operation failed (bad input, unknown task_id, store error),
2 a usage error. Errors are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import IndexConfigError, InvalidRequestError, MediaError, VecsimError
from .index_config import INDEX_TYPES, parse_param_pairs
from .media.options import DEFAULT_FPS, MAX_DEDUPE_DISTANCE, MediaOptions

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Visual copy detection: add images to a custom index, query with a copy, remove by task_id.",
)
bench_app = typer.Typer(no_args_is_help=True, help="Measure detection quality and speed.")
app.add_typer(bench_app, name="bench")
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the HTTP service's projects (vecsim serve).")
app.add_typer(keys_app, name="keys")


class _State:
    index: str | None = None
    collection: str = "vecsim"
    fps: float = DEFAULT_FPS
    debug: bool = False
    descriptor: str | None = None
    project: str = ""
    api_key: str | None = None
    store_options: dict = {}


state = _State()
#: Help of every ``--index-type`` option: the types come from one list.
INDEX_TYPE_HELP = f"Index type: {', '.join(INDEX_TYPES)}"


@app.callback()
def _main(
    index: Annotated[
        Optional[str],
        typer.Option("--index", envvar="VECSIM_INDEX",
                     help="Index URI: a local path (embedded: a new one is Qdrant Edge, an existing Milvus Lite "
                          "index stays Milvus Lite), milvus-lite:PATH.db, http://host:19530 (Milvus), "
                          "qdrant://host:6333, qdrant-local:PATH or qdrant-edge:PATH; or a vecsim service: "
                          "https://host:8000 with --api-key (or vecsim+https://host:8000)."),
    ] = None,
    collection: Annotated[str, typer.Option(help="Collection name inside the index.")] = "vecsim",
    fps: Annotated[float, typer.Option(min=0.01, max=60.0, help="Video frames sampled per second.")] = DEFAULT_FPS,
    token: Annotated[Optional[str], typer.Option(envvar="VECSIM_TOKEN", show_envvar=True,
                                                 help="Milvus token (user:password) or Qdrant API key.")] = None,
    db_name: Annotated[Optional[str], typer.Option(help="Milvus database name.")] = None,
    consistency: Annotated[Optional[str], typer.Option(
        help="Milvus server read consistency: Strong, Bounded, Session or Eventually (default: Bounded, "
             "Session after this process writes).")] = None,
    descriptor: Annotated[Optional[str], typer.Option(
        envvar="VECSIM_DESCRIPTOR", show_envvar=True,
        help="Descriptor: the built-in default, openclip:ARCH:PRETRAINED or sscd:PATH (see docs/models.md). "
             "A collection keeps the descriptor it was created with.")] = None,
    project: Annotated[str, typer.Option(
        envvar="VECSIM_PROJECT", help="Project (tenant) inside the collection; default: the default project "
                                      "(docs/tenancy.md).")] = "",
    api_key: Annotated[Optional[str], typer.Option(
        envvar="VECSIM_API_KEY", show_envvar=True,
        help="API key of a vecsim service (vecsim serve): with it, an http(s):// --index is the service, "
             "not a Milvus server (docs/remote.md).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    state.index, state.collection, state.fps, state.debug = index, collection, fps, debug
    state.api_key = api_key or None
    state.project = project
    state.descriptor = descriptor
    given = {"token": token, "db_name": db_name, "consistency": consistency}
    state.store_options = {k: v for k, v in given.items() if v is not None}


def _open(index_type: str | None = None, index_params: list[str] | None = None, dedupe: int | None = None,
          local_features: bool = True):
    from .index import CustomIndex
    from .remote import RemoteIndex, is_service_uri

    if is_service_uri(state.index, state.api_key):
        own = {"--index-type": index_type, "--index-param": index_params or None, "--dedupe": dedupe,
               "--no-local-features": None if local_features else True, "--descriptor": state.descriptor,
               "--collection": None if state.collection == "vecsim" else state.collection,
               "--fps": None if state.fps == DEFAULT_FPS else state.fps,
               **{f"--{k.replace('_', '-')}": v for k, v in state.store_options.items()}}
        given = [name for name, value in own.items() if value is not None]
        if given:
            raise InvalidRequestError(f"{', '.join(given)}: set by the service's operator (vecsim serve), not by a "
                                      "client; leave them out with a service --index")
        remote = RemoteIndex(state.index, api_key=state.api_key)
        return remote.for_project(state.project) if state.project else remote
    params = parse_param_pairs(index_params or [])
    return CustomIndex(state.index, collection=state.collection, index=index_type, index_params=params or None,
                       media=MediaOptions(fps=state.fps, dedupe_distance=dedupe), descriptor=state.descriptor,
                       local_features=local_features, project=state.project, **state.store_options)


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _json_option(option: str, text: str | None):
    """The JSON value of an option, or an error naming the option and where the JSON breaks."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"{option} is not valid JSON ({exc.msg} at character {exc.pos}): {text[:80]!r}") from None


def _fail(message: str) -> None:
    typer.echo(f"vecsim: error: {message}", err=True)


@app.command()
def add(
    paths: Annotated[list[str], typer.Argument(help="Image / video files and folders (searched recursively).")],
    metadata: Annotated[Optional[str], typer.Option(help="JSON object stored with every added file.")] = None,
    task_id: Annotated[Optional[str], typer.Option(help="task_id for a single file (default: generated).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an existing task_id.")] = False,
    index_type: Annotated[Optional[str], typer.Option(help=f"{INDEX_TYPE_HELP} (used when the collection is created).")] = None,
    index_param: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE index parameter, repeatable.")] = None,
    dedupe: Annotated[Optional[int], typer.Option(min=0, max=MAX_DEDUPE_DISTANCE, help="Merge consecutive video frames within this many PDQ bits.")] = None,
    local_features: Annotated[bool, typer.Option(help="Keep each frame's local features (about 5.8 KB) so that "
                              "queries verify candidates geometrically (used when the collection is created).")] = True,
) -> None:
    """Add images and videos; prints one JSON line per added file: {"task_id", "source"}."""
    from .media import expand_sources

    meta = _json_option("--metadata", metadata)
    if meta is not None and not isinstance(meta, dict):
        raise InvalidRequestError(f"--metadata must be a JSON object, got {type(meta).__name__}")
    sources = expand_sources(paths)
    if task_id is not None and len(sources) != 1:
        raise VecsimError(f"--task-id names one file, but {len(sources)} files were given")
    if not sources:
        raise VecsimError("no image files found in the given paths")
    with _open(index_type, index_param, dedupe, local_features) as index:
        result = index.add_many(sources, metadata=meta, task_ids=[task_id] if task_id else None, replace=replace)
    for a in result.added:
        _emit({"task_id": a.task_id, "source": a.source})
        for w in a.warnings:
            typer.echo(f"vecsim: warning: {a.source}: {w}", err=True)
    for f in result.failed:
        _fail(f.message)
    if result.failed:
        raise typer.Exit(1)


@app.command()
def ingest(
    manifest: Annotated[Path, typer.Argument(help="CSV, JSON lines or Parquet: one row per asset with source "
                                                  "(path, folder or URL), optional task_id and metadata.")],
    index: Annotated[Optional[str], typer.Option("--index", help="Index URI (as the global --index).")] = None,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", help="Run on Ray: 'local' starts a cluster on this machine, 'auto' joins the running one, or "
                      "ray://HOST:10001. Without it the job runs in this process.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Embedding actors on Ray (one model each).")] = 1,
    cpus_per_worker: Annotated[float, typer.Option(min=0.1, help="CPUs (and torch threads) per actor.")] = 1.0,
    gpus_per_worker: Annotated[float, typer.Option(min=0.0, help="GPUs per actor (0: embed on CPU).")] = 0.0,
    replace: Annotated[bool, typer.Option("--replace", help="Re-index a task_id whose content changed "
                                                            "(without it, such a row fails with task_exists).")] = False,
    failures: Annotated[Optional[Path], typer.Option(
        help="JSON lines file of the rows that failed (default: MANIFEST.failures.jsonl; appended to).")] = None,
    index_type: Annotated[Optional[str], typer.Option(help=f"{INDEX_TYPE_HELP} (used when the collection is created).")] = None,
    index_param: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE index parameter, repeatable.")] = None,
    dedupe: Annotated[Optional[int], typer.Option(min=0, max=MAX_DEDUPE_DISTANCE, help="Merge consecutive video frames within this many PDQ bits.")] = None,
) -> None:
    """Add every asset of a manifest, resumably (docs/ingest.md): a rerun skips what is in the index
    with the same content. Prints a JSON summary; exit code 3 when some rows failed (see the
    failures file), 0 when none did."""
    from .bulk import ingest as run_ingest
    from .remote import is_service_uri

    if index is not None:
        state.index = index
    if is_service_uri(state.index, state.api_key):
        raise InvalidRequestError("vecsim ingest writes to the vector store itself (a Milvus or Qdrant URI), not "
                                  "through a vecsim service")
    with _open(index_type, index_param, dedupe) as idx:
        result = run_ingest(manifest, idx, ray=ray, workers=workers, cpus_per_worker=cpus_per_worker,
                            gpus_per_worker=gpus_per_worker, replace=replace, failures=failures)
    typer.echo(f"vecsim: {result.summary()}", err=True)
    _emit({"added": result.added, "replaced": result.replaced, "skipped": result.skipped, "failed": result.failed,
           "frames": result.frames, "seconds": round(result.seconds, 3), "assets_per_s": round(result.assets_per_s, 3),
           "frames_per_s": round(result.frames_per_s, 3), "failures": result.failures, "failed_by_code": result.by_code})
    if result.failed:
        raise typer.Exit(3)


@app.command()
def query(
    paths: Annotated[list[str], typer.Argument(help="Query image / video files or folders.")],
    top_k: Annotated[int, typer.Option(min=1, help="At most this many assets per query.")] = 5,
    threshold: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Minimum similarity_score (default 0.5).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG timeline of the matches (one per query: NAME-2.png, ...).")] = None,
    rotations: Annotated[Optional[bool], typer.Option(
        "--rotations/--no-rotations",
        help="Also search each frame turned a quarter left and right (default: for images only).")] = None,
) -> None:
    """Query; prints one JSON line per query file: {"source", "output": [assets], ...}."""
    from .media import expand_sources

    if plot is not None:  # before any query runs: fail at once where matplotlib is missing
        from .plot import require_matplotlib

        require_matplotlib("--plot", "plot")
    failed = 0
    sources = expand_sources(paths)
    with _open() as index:
        for i, src in enumerate(sources):
            try:
                result = index.query(src, top_k=top_k, threshold=threshold, rotations=rotations)
            except MediaError as exc:
                _fail(str(exc))
                failed += 1
                continue
            _emit(result.model_dump(mode="json"))
            for w in result.warnings:
                typer.echo(f"vecsim: warning: {result.source}: {w}", err=True)
            if plot is not None:
                from .plot import plot_timeline

                target = plot if i == 0 else plot.with_name(f"{plot.stem}-{i + 1}{plot.suffix or '.png'}")
                plot_timeline(result, target)
                typer.echo(f"vecsim: wrote {target}", err=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def remove(task_ids: Annotated[list[str], typer.Argument(help="task_ids to delete.")]) -> None:
    """Remove assets by task_id; prints one JSON line per removed asset."""
    failed = 0
    with _open() as index:
        for tid in task_ids:
            try:
                _emit(index.remove(tid).model_dump(mode="json"))
            except VecsimError as exc:
                _fail(str(exc))
                failed += 1
    if failed:
        raise typer.Exit(1)


@app.command()
def get(task_id: str) -> None:
    """Show one asset: metadata, source, frames."""
    with _open() as index:
        _emit(index.get(task_id).model_dump(mode="json"))


@app.command("list")
def list_assets(
    limit: Annotated[int, typer.Option(help="At most this many assets (1 to 1000).")] = 100,
    after: Annotated[Optional[str], typer.Option(help="Start after this task_id (the `next` of the page before).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='One JSON line: {"assets": [...], "next": ...}.')] = False,
) -> None:
    """List the project's assets by task_id, one page: a line per asset (task_id, media type, seconds, frames,
    source); where more follow, stderr says the --after of the next page."""
    with _open() as index:
        page = index.list_assets(limit=limit, after=after)
    if as_json:
        _emit(page.model_dump(mode="json"))
        return
    for a in page.assets:
        sys.stdout.write(f"{a.task_id}\t{a.media_type}\t{a.duration:g}\t{a.frames}\t{a.source}\n")
    sys.stdout.flush()
    if page.next is not None:
        typer.echo(f"vecsim: more assets: the next page is `list --after {shlex.quote(page.next)}`", err=True)


@app.command()
def info() -> None:
    """Engine, descriptor, counts and index config."""
    with _open() as index:
        _emit(index.info().model_dump(mode="json"))


@app.command()
def vacuum() -> None:
    """Delete frame rows left by adds that were killed half-way (a full scan; run it when no add is in flight)."""
    with _open() as index:
        _emit(index.vacuum().model_dump(mode="json"))


@app.command()
def demo() -> None:
    """Index scikit-image's sample photos plus distractors, query edited copies, print the table.

    Uses a temporary index on the embedded default unless --index is given."""
    from .demo import run_demo

    run_demo(state.index)


@app.command()
def size(
    images: Annotated[int, typer.Option(min=0, help="Images to index (one frame each).")] = 0,
    video_hours: Annotated[float, typer.Option(min=0.0, help="Hours of video to index.")] = 0.0,
    fps: Annotated[Optional[float], typer.Option(min=0.01, max=60.0, help="Video frames sampled per second "
                                                 "(default: the global --fps, 1.0).")] = None,
    keep: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of sampled video frames kept after "
                                        "--dedupe merges still stretches (1.0: no dedupe).")] = 1.0,
    videos: Annotated[Optional[int], typer.Option(min=0, help="Number of video files (asset records; "
                                                  "default: one per 10 minutes of video).")] = None,
    engine: Annotated[str, typer.Option(help="qdrant (Qdrant Edge or a Qdrant server) or milvus (a Milvus server).")] = "qdrant",
    index_type: Annotated[Optional[str], typer.Option(help=f"{INDEX_TYPE_HELP} (default: the one docs/sizing.md "
                                                      "recommends for the size).")] = None,
    local_features: Annotated[bool, typer.Option(help="Frames keep their keypoints (the default of add).")] = True,
    workers: Annotated[int, typer.Option(min=1, help="Ingest workers.")] = 1,
    cores_per_worker: Annotated[int, typer.Option(min=1, help="CPU cores per ingest worker.")] = 16,
    replicas: Annotated[int, typer.Option(min=1, help="Copies of each shard (query throughput, availability).")] = 1,
    node_ram_gib: Annotated[float, typer.Option(min=1.0, help="RAM of one index node.")] = 64.0,
    node_cores: Annotated[int, typer.Option(min=1, help="CPU cores of one index node.")] = 16,
    node_disk_gib: Annotated[float, typer.Option(min=1.0, help="Disk of one index node.")] = 1024.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as one JSON object.")] = False,
) -> None:
    """Estimate frames, memory, disk, nodes, query throughput and ingest time (docs/sizing.md)."""
    from .sizing import Node, estimate, frames_for, recommend

    if not images and not video_hours:
        raise InvalidRequestError("nothing to size: give --images N and/or --video-hours H")
    frames = frames_for(images, video_hours, fps if fps is not None else state.fps, keep)
    assets = images + (videos if videos is not None else math.ceil(video_hours * 6))
    chosen = index_type or recommend(frames, engine)
    est = estimate(frames, assets, engine, chosen, keypoints=local_features, workers=workers,
                   cores_per_worker=cores_per_worker, video_hours=video_hours, replicas=replicas,
                   node=Node(ram_gib=node_ram_gib, cores=node_cores, disk_gib=node_disk_gib))
    if as_json:
        _emit(est.to_dict())
        return
    gib = 1024**3
    lines = [
        f"frames          {est.frames:,} in {est.assets:,} assets",
        f"index           {est.engine} {est.index}{'' if index_type else ' (recommended)'}, "
        f"keypoints {'kept' if est.keypoints else 'not kept'}",
        f"memory          {est.ram_bytes / gib:,.1f} GiB",
        f"disk            {est.disk_bytes / gib:,.1f} GiB",
        f"nodes           {est.nodes} ({est.shards} shard(s) x {est.replicas} replica(s); "
        f"{node_ram_gib:g} GiB RAM, {node_cores} cores, {node_disk_gib:g} GiB disk each)",
        f"search          {est.search_ms:,.1f} ms per image query, {est.queries_per_s:,.0f} queries/s (searches only)",
        f"ingest          {est.ingest_hours:,.1f} h on {est.workers} x {est.cores_per_worker} cores "
        f"({est.ingest_core_hours:,.1f} core-hours)",
    ]
    if est.extrapolated:
        lines.append("note            past 1 M frames a shard: search figures are extrapolated, not measured")
    if not est.measured_row_cost:
        lines.append(f"note            {est.engine} {est.index}: bytes per row computed, not measured (docs/sizing.md)")
    typer.echo("\n".join(lines))


@bench_app.command("images")
def bench_images(
    folder: Annotated[Path, typer.Argument(help="Folder of photos: references, non-matching photos, distractors.")],
    distractors: Annotated[Optional[Path], typer.Option(help="Folder of more distractor photos (indexed).")] = None,
    videos: Annotated[Optional[Path], typer.Option(help="Folder of videos: 1 fps frames for the extra distractors.")] = None,
    extra_distractors: Annotated[int, typer.Option(help="Extra distractor vectors: video frames and random crops.")] = 0,
    lookalike_videos: Annotated[Optional[Path], typer.Option(help="Folder of videos whose shots give the look-alike "
                                "frames (another moment of the same shot; default: --videos).")] = None,
    references: Annotated[Optional[int], typer.Option(help="Photos of FOLDER used as references (default half).")] = None,
    families: Annotated[Optional[list[str]], typer.Option("--family", help="Optional edit family, repeatable: "
                        "overlay, pad, flip, perspective, screenshot, pip.")] = None,
    exclude: Annotated[Optional[Path], typer.Option(help="Text file of photo file names to leave out "
                       "(e.g. a descriptor's training photos).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for image-bench.md / .json / PNG plots.")] = Path("bench-out"),
    cache: Annotated[Path, typer.Option(help="Folder for the cached descriptor corpus.")] = Path(".vecsim-bench-cache"),
    index_type: Annotated[str, typer.Option(help=f"{INDEX_TYPE_HELP} (of the benchmark collection).")] = "FLAT",
    index_param: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE, repeatable.")] = None,
    e2e_queries: Annotated[int, typer.Option(help="End-to-end image queries timed.")] = 50,
    rotations: Annotated[bool, typer.Option(help="Search each query image's quarter turns too, as query() does.")] = True,
    local_features: Annotated[bool, typer.Option(help="Store local features and verify candidates geometrically, "
                              "as a collection does by default.")] = True,
    calibration: Annotated[Optional[Path], typer.Option(help="A calibration JSON to score with instead of the "
                           "descriptor's (e.g. an earlier one, for before / after).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """DISC21-style benchmark: Recall@1, recall at 1 % flagged, micro-AP, recall at 90 % precision
    per edit; embedding and query speed; bytes per vector. Index: --index (a fresh collection), or
    a temporary index on the embedded default."""
    from .bench.images import run_image_bench
    from .bench.report import write_report
    from .plot import plot_image_bench

    skip = frozenset(exclude.read_text().split()) if exclude else frozenset()
    report = run_image_bench(
        folder, distractors, videos=videos, lookalike_videos=lookalike_videos, extra_distractors=extra_distractors,
        references=references,
        families=families, exclude=skip, descriptor=state.descriptor, uri=state.index,
        collection=state.collection if state.index else "bench_images", index=index_type,
        index_params=parse_param_pairs(index_param or []) or None, cache_dir=cache, e2e_queries=e2e_queries,
        rotations=rotations, local_features=local_features, calibration=calibration, seed=seed,
        progress=lambda m: typer.echo(m, err=True), **(state.store_options if state.index else {}),
    )
    stem = f"image-bench-{report.index['type']}"
    md, js = write_report(report, out, stem)
    pngs = plot_image_bench(report, out, stem)
    typer.echo(report.to_markdown())
    typer.echo(f"\nwrote {md}, {js}, {', '.join(str(p) for p in pngs)}", err=True)


@bench_app.command("videos")
def bench_videos(
    references: Annotated[Path, typer.Argument(help="Folder of reference videos.")],
    out: Annotated[Path, typer.Option(help="Folder for video-bench.md / .json.")] = Path("bench-out"),
    exclude: Annotated[Optional[list[str]], typer.Option(help="Glob of file names to leave out, repeatable.")] = None,
    index_type: Annotated[str, typer.Option(help=f"{INDEX_TYPE_HELP} (of the benchmark collection).")] = "FLAT",
    index_param: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE, repeatable.")] = None,
) -> None:
    """Edited excerpts of each reference as queries: right asset first, segment precision / recall,
    segment AP. Descriptor: --descriptor. Index: --index (a fresh collection), or a temporary
    index on the embedded default."""
    from .bench.report import write_report
    from .bench.videos import run_video_bench

    report = run_video_bench(
        references, uri=state.index, exclude=exclude, index=index_type,
        index_params=parse_param_pairs(index_param or []) or None, descriptor=state.descriptor,
        collection=state.collection if state.index else "video_bench", **(state.store_options if state.index else {}),
    )
    md, js = write_report(report, out, "video-bench")
    typer.echo(report.to_markdown())
    typer.echo(f"\nwrote {md} and {js}", err=True)


@bench_app.command("index")
def bench_index(
    references: Annotated[Path, typer.Argument(help="Folder of reference photos.")],
    distractors: Annotated[Path, typer.Option(help="Folder of distractor photos (indexed, and cropped for more).")],
    videos: Annotated[Optional[Path], typer.Option(help="Folder of videos: 1 fps frames and crops as distractors.")] = None,
    target: Annotated[int, typer.Option(help="Vectors in the index (references + distractors).")] = 50_000,
    cache: Annotated[Path, typer.Option(help="Folder for the cached descriptor corpus.")] = Path(".vecsim-bench-cache"),
    out: Annotated[Path, typer.Option(help="Folder for index-bench-<engine>-<type>.md / .json.")] = Path("bench-out"),
    index_type: Annotated[str, typer.Option(help=f"{INDEX_TYPE_HELP} (the one to measure).")] = "FLAT",
    index_param: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE, repeatable.")] = None,
    e2e_queries: Annotated[int, typer.Option(help="End-to-end image queries timed.")] = 100,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Build time, bytes per vector, Recall@1 and latency of one index config at tens of thousands
    of vectors. Index: --index (a fresh collection), or a temporary index on the embedded default."""
    import tempfile

    from .bench.corpus import index_bench_corpus
    from .bench.index import run_index_bench
    from .bench.report import write_report
    from .descriptors import load_descriptor
    from .index_config import parse_index_config

    config = parse_index_config(index_type, parse_param_pairs(index_param or []))
    say = lambda m: typer.echo(m, err=True)  # noqa: E731
    corpus = index_bench_corpus(load_descriptor(state.descriptor), references, distractors, videos, cache,
                                target_vectors=target, seed=seed, progress=say)
    with tempfile.TemporaryDirectory(prefix="vecsim-bench-") as tmp:
        report = run_index_bench(corpus, references, uri=state.index or str(Path(tmp) / "bench.db"), index=config,
                                 collection=state.collection if state.index else "bench_index",
                                 e2e_queries=e2e_queries, seed=seed, progress=say,
                                 descriptor=state.descriptor, **state.store_options)
    md, js = write_report(report, out, f"index-bench-{report.engine}-{config.type}")
    typer.echo(report.to_markdown())
    typer.echo(f"\nwrote {md} and {js}", err=True)


@bench_app.command("scale")
def bench_scale(
    rows: Annotated[str, typer.Option(help="Sizes to measure, increasing, comma-separated (e.g. 10000,100000,1000000): "
                                           "one collection is loaded up to each in turn.")],
    index: Annotated[str | None, typer.Option("--index", help="Index URI (as the global --index; a fresh "
                                              "collection).")] = None,
    collection: Annotated[str | None, typer.Option(help="Collection name (default: the global --collection "
                                                   "with the global --index, else bench_scale).")] = None,
    queries: Annotated[int, typer.Option(min=1, help="Query vectors timed at each size.")] = 200,
    frames_per_asset: Annotated[int, typer.Option(min=1, help="Frame rows per synthetic asset.")] = 10,
    index_type: Annotated[str | None, typer.Option(help=f"{INDEX_TYPE_HELP} (of the benchmark collection; default: "
                                                    "the engine's default, HNSW on the embedded default).")] = None,
    index_param: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for scale-bench.md / .json.")] = Path("bench-out"),
    seed: Annotated[int, typer.Option()] = 0,
    faiss_hnsw: Annotated[bool, typer.Option(help="Build faiss HNSW beside (minutes at 1 M rows; the same for every "
                                                  "engine on the same --seed, so measure it once).")] = True,
) -> None:
    """Load, build, search and query latency, recall@10, memory and disk of one backend and index
    config as one collection grows through the --rows sizes, on synthetic vectors clustered
    around real descriptors (no media), next to faiss flat and HNSW. Index: --index (a fresh
    collection), or a temporary index on the embedded default."""
    import tempfile

    from .adapters import default_index
    from .bench.report import write_report
    from .bench.scale import parse_rows, run_scale_bench
    from .index_config import parse_index_config

    sizes = parse_rows(rows)
    uri = index or state.index
    name = collection or (state.collection if state.index else "bench_scale")
    with tempfile.TemporaryDirectory(prefix="vecsim-bench-") as tmp:
        target = uri or str(Path(tmp) / "scale.db")
        if index_type is None and index_param:
            raise IndexConfigError("--index-param needs --index-type")
        config = (parse_index_config(index_type, parse_param_pairs(index_param or [])) if index_type
                  else default_index(target))
        report = run_scale_bench(uri=target, rows=sizes, index=config, collection=name,
                                 queries=queries, frames_per_asset=frames_per_asset, seed=seed, faiss_hnsw=faiss_hnsw,
                                 descriptor=state.descriptor, progress=lambda m: typer.echo(m, err=True),
                                 **(state.store_options if uri else {}))
    md, js = write_report(report, out, "scale-bench")
    typer.echo(report.to_markdown())
    typer.echo(f"\nwrote {md} and {js}", err=True)


# --- the HTTP service --------------------------------------------------------------------------------

ConfigOption = Annotated[Optional[Path], typer.Option(
    "--config", envvar="VECSIM_CONFIG", help="Settings file (TOML; docs/service.md lists every setting).")]
DataDirOption = Annotated[Optional[Path], typer.Option(
    "--data-dir", help="The service's folder: keys, task queue, spooled uploads (default ./vecsim-service).")]


def _server_settings(config: Path | None, **overrides):
    try:
        from .server.settings import ServerSettings
    except ImportError as exc:
        raise _missing_serve(exc) from None
    return ServerSettings.load(config, **overrides)


def _missing_serve(exc: ImportError):
    from .errors import MissingDependencyError

    return MissingDependencyError(f"the service needs the serve extra ({exc.name or exc} is missing): "
                                  "pip install 'vecsim[serve]'")


@app.command()
def serve(
    index: Annotated[Optional[str], typer.Option("--index", help="Index URI (as for every command; default: the "
                                                 "global --index, $VECSIM_INDEX, or ./vecsim.db).")] = None,
    host: Annotated[Optional[str], typer.Option(help="Bind address (default 127.0.0.1: this machine only).")] = None,
    port: Annotated[Optional[int], typer.Option(help="TCP port (default 8000; 0 picks a free one).")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    workers: Annotated[Optional[int], typer.Option(
        help="Task worker threads (default 1; 0: accept tasks, leave them to other replicas).")] = None,
    queue: Annotated[Optional[str], typer.Option(
        help='Task queue: "sqlite" (default, in --data-dir) or redis://host:port/0 (several replicas).')] = None,
    console: Annotated[Optional[bool], typer.Option(
        "--console/--no-console", help="Serve the web console at / (default: off; docs/console.md).")] = None,
) -> None:
    """Run the custom-search HTTP service (docs/service.md). Create a key first: vecsim keys create --project NAME."""
    settings = _server_settings(config, index=index or state.index, host=host, port=port, data_dir=data_dir,
                                workers=workers, queue=queue, console=console, collection=state.collection
                                if state.collection != "vecsim" else None)
    try:
        import uvicorn

        from .server import create_app
        from .server.observability import configure_logging
    except ImportError as exc:
        raise _missing_serve(exc) from None
    configure_logging(settings.log_level)
    typer.echo(f"vecsim: serving {settings.index} on http://{settings.host}:{settings.port} "
               f"(data in {settings.data_dir})", err=True)
    if settings.console:
        typer.echo(f"vecsim: web console at http://{settings.host}:{settings.port}/", err=True)
    web_app = create_app(settings)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:  # noqa: ANN001 - uvicorn's signature
            # SIGTERM: the task workers stop taking tasks now, and all of it ends within shutdown_timeout_s
            runtime = getattr(web_app.state, "runtime", None)
            if runtime is not None:
                runtime.begin_shutdown()
            await super().shutdown(sockets)

    Server(uvicorn.Config(web_app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                          timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
                          server_header=False)).run()


@keys_app.command("create")
def keys_create(
    project: Annotated[str, typer.Option("--project", help="The project (tenant) the key works for.")],
    label: Annotated[str, typer.Option(help="A note to tell keys apart in `vecsim keys list`.")] = "",
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create an API key (printed once: only its hash is stored)."""
    from .server.keys import KeyStore

    settings = _server_settings(config, data_dir=data_dir)
    new = KeyStore(Path(settings.data_dir) / "keys.sqlite").create(project, label)
    _emit({"key": new.key, "id": new.info.id, "project": new.info.project, "label": new.info.label})
    typer.echo("vecsim: store this key now; it is not shown again", err=True)


@keys_app.command("list")
def keys_list(
    project: Annotated[Optional[str], typer.Option("--project", help="Only this project's keys.")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """List keys (ids, projects, labels, whether revoked; never the keys)."""
    from .server.keys import KeyStore

    settings = _server_settings(config, data_dir=data_dir)
    for k in KeyStore(Path(settings.data_dir) / "keys.sqlite").list(project):
        _emit({"id": k.id, "project": k.project, "label": k.label, "created": k.created, "revoked": k.revoked})


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `vecsim keys list`).")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a key: requests with it answer 401 from now on."""
    from .server.keys import KeyStore

    settings = _server_settings(config, data_dir=data_dir)
    k = KeyStore(Path(settings.data_dir) / "keys.sqlite").revoke(key_id)
    _emit({"id": k.id, "project": k.project, "revoked": k.revoked})


def main() -> None:
    try:
        rc = app(standalone_mode=False)  # returns the code of a typer.Exit raised inside
        sys.exit(rc if isinstance(rc, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("vecsim: aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors, vecsim errors, anything else: one line
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):  # a click usage error
            exc.show()
            sys.exit(exc.exit_code)
        if state.debug:
            traceback.print_exc()
        _fail(str(exc) or type(exc).__name__)
        if not state.debug and not isinstance(exc, (VecsimError, OSError)):  # a bug or an engine's own error
            typer.echo(f"vecsim: ({type(exc).__name__}; run with --debug for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
