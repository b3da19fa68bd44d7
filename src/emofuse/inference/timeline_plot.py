"""The PNG of an emotion timeline (`emofuse.inference.timeline.Timeline.plot`): class probabilities over
time as stacked areas, above a band coloured by each segment's label (grey: no label)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: the colour of segments without a label
NO_LABEL = "#d0d0d0"


def plot_timeline(timeline: Any, path: str | Path) -> Path:
    """Draw ``timeline`` to the PNG ``path`` (written atomically)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from emofuse.inference.explain import save_figure

    labels = list(timeline.labels)
    segments = list(timeline.segments)
    colours = _colours(labels)
    fig = Figure(figsize=(12, 4.2))
    grid = fig.add_gridspec(2, 1, height_ratios=[4, 1], hspace=0.08)
    top, band = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    # each segment's probabilities over its own stretch (step-wise; overlapping windows: from its centre)
    times, probs = _steps(segments, labels, timeline.hop)
    if times.size:
        top.stackplot(times, probs.T, labels=labels, colors=[colours[lab] for lab in labels], step="post")
    end = max([timeline.duration, *(s.end for s in segments)], default=1.0) or 1.0
    top.set_xlim(0, end)
    top.set_ylim(0, 1)
    top.set_ylabel("probability")
    top.set_xticklabels([])
    mode = "speech segments" if timeline.mode == "vad" else f"{timeline.window:g} s windows, hop {timeline.hop:g} s"
    top.set_title(f"{Path(timeline.path).name}: {mode}", fontsize=10)
    for seg, lo, hi in zip(segments, times[:-1], times[1:]):  # the stretch each segment holds in the plot
        band.broken_barh([(lo, max(hi - lo, 1e-3))], (0, 1),
                         facecolors=colours.get(seg.label, NO_LABEL) if seg.label else NO_LABEL)
    band.set_xlim(0, end)
    band.set_yticks([])
    band.set_xlabel("time (s)")
    band.set_ylabel("label", rotation=0, ha="right", va="center")
    handles = [Patch(color=colours[lab], label=lab) for lab in labels] + [Patch(color=NO_LABEL, label="no label")]
    top.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    return save_figure(fig, Path(path))


def _colours(labels: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}


def _steps(segments: list[Any], labels: list[str], hop: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Step positions and probabilities ``[n, classes]``: each segment holds from its start (its centre
    minus half a hop when windows overlap) to the next one's; zeros where a segment has no label."""
    if not segments:
        return np.zeros(0), np.zeros((0, len(labels)))
    starts = []
    for seg in segments:
        if hop is not None and hop < seg.end - seg.start:
            starts.append(max(0.0, (seg.start + seg.end) / 2 - hop / 2))
        else:
            starts.append(seg.start)
    starts[0] = segments[0].start
    rows = [[seg.probabilities.get(lab, 0.0) for lab in labels] for seg in segments]
    times = np.array([*starts, segments[-1].end], dtype=float)
    probs = np.array([*rows, rows[-1]], dtype=float)
    return times, probs
