"""A timeline picture of a query result: query time on x, match time on y, one colour per asset,
the similarity score as intensity, matched segments as lines. Needs matplotlib
(``pip install 'vecsim[plot]'``)."""

from __future__ import annotations

from pathlib import Path

from .schema import QueryResult


def plot_timeline(result: QueryResult, path: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import to_rgba
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib: pip install 'vecsim[plot]'") from exc

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
