"""A timeline picture of a query result: query time on x, match time on y, one colour per asset,
the similarity score as intensity, matched segments as lines. Needs matplotlib
(``pip install 'vecsim[plot]'``)."""

from __future__ import annotations

from pathlib import Path

from .errors import MissingDependencyError
from .schema import QueryResult


def _pyplot(needs_it: str, extra: str):
    """``matplotlib.pyplot`` on the file-only Agg backend, or an ImportError saying what
    (``needs_it``) needs it and which extra installs it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError(f"{needs_it} needs matplotlib: pip install 'vecsim[{extra}]'") from exc
    return plt


def require_matplotlib(needs_it: str, extra: str) -> None:
    """Raise :class:`MissingDependencyError` now, before any work, where matplotlib is missing."""
    _pyplot(needs_it, extra)


def plot_timeline(result: QueryResult, path: str | Path) -> Path:
    plt = _pyplot("--plot", "plot")
    from matplotlib.colors import to_rgba

    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    colours = plt.get_cmap("tab10").colors
    for i, asset in enumerate(result.output):
        base = colours[i % len(colours)]
        rgba = [to_rgba(base, alpha=0.15 + 0.85 * m.similarity_score) for m in asset.matches]
        ax.scatter([m.query_timestamp for m in asset.matches], [m.matching_timestamp for m in asset.matches],
                   c=rgba, s=36, edgecolors="none",
                   label=f"{asset.task_id} ({asset.media_type}, score {asset.score:.2f}, "
                         f"{asset.matched_ratio:.0%} matched)")
        for seg in asset.segments:
            ax.plot([seg.query_start, seg.query_end], [seg.match_start, seg.match_end], color=base, lw=2.5,
                    alpha=0.6)
    ax.set_xlabel("query time (s)")
    ax.set_ylabel("matched time in the indexed asset (s)")
    ax.set_xlim(left=0, right=max(result.duration, 1.0))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    title = Path(result.source).name if result.source else "query"
    ax.set_title(f"{title}: {len(result.output)} matching asset(s)" if result.output else f"{title}: no match")
    if result.output:
        ax.legend(loc="upper left", fontsize=8, framealpha=0.8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_image_bench(report, out_dir: str | Path, stem: str = "image-bench") -> list[Path]:
    """Two PNGs of an image benchmark report: the precision-recall curve of all queries pooled
    (micro-AP) and per-edit bars of Recall@1 and recall at 1 % flagged."""
    plt = _pyplot("benchmark plots", "bench")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pr_path, bars_path = out / f"{stem}-pr.png", out / f"{stem}-edits.png"

    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    ax.plot(report.pr_curve.get("recall", []), report.pr_curve.get("precision", []), lw=2)
    ax.axhline(0.9, color="grey", ls=":", lw=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.set_title(f"{report.descriptor}, {report.index.get('type')}: micro-AP {report.micro_ap:.3f}")
    fig.tight_layout()
    fig.savefig(pr_path)
    plt.close(fig)

    edits = list(report.per_edit)
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(edits) + 2), 4.5), dpi=110)
    xs = range(len(edits))
    ax.bar([x - 0.2 for x in xs], [report.per_edit[e]["recall_at_1"] for e in edits], width=0.4, label="Recall@1")
    ax.bar([x + 0.2 for x in xs], [report.per_edit[e]["recall_at_1pct_flagged"] for e in edits], width=0.4,
           label="recall at 1 % flagged")
    ax.set_xticks(list(xs), edits, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"{report.descriptor}, {report.index.get('type')}: per edit")
    fig.tight_layout()
    fig.savefig(bars_path)
    plt.close(fig)
    return [pr_path, bars_path]
