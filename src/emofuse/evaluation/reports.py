"""Result files: benchmark JSON + Markdown table, console table and confusion-matrix plots.

Benchmark JSON format::

    {"results": [{"model": str, "modalities": [str, ...], "wa_mean": float, "wa_std": float,
                  "ua_mean": float, "ua_std": float, "macro_f1_mean": float,
                  "macro_f1_std": float, "train_seconds": float, ...extra keys allowed}],
     ...extra top-level keys allowed}

NaN/inf floats are written as ``null`` (JSON has no NaN); numpy scalars and arrays become plain
JSON numbers and lists. In a multi-process run only rank zero writes files
(`emofuse.training.distributed.is_rank_zero`); the other ranks return the path unwritten.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.atomic import atomic_write_bytes
from emofuse.errors import DataError
from emofuse.training.distributed import is_rank_zero

REQUIRED_KEYS = ("model", "modalities", "wa_mean", "wa_std", "ua_mean", "ua_std", "macro_f1_mean",
                 "macro_f1_std", "train_seconds")


def to_jsonable(value: Any) -> Any:
    """Recursively convert numpy types, tuples and paths to JSON types; NaN/inf become None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(data: Any, indent: int | None = 2) -> str:
    """``data`` as strict JSON text: every NaN/inf becomes ``null`` (`to_jsonable`) and
    ``allow_nan=False`` guarantees no bare ``NaN``/``Infinity`` token is ever written."""
    return json.dumps(to_jsonable(data), indent=indent, allow_nan=False)


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented strict JSON (`json_text`) to ``path`` atomically (temp file + os.replace)."""
    path = Path(path)
    if not is_rank_zero():  # one writer in a multi-process run
        return path
    text = json_text(data) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically (on rank zero only)."""
    path = Path(path)
    if not is_rank_zero():
        return path
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def check_results(results: dict[str, Any], source: str | Path | None = None) -> None:
    """Raise `DataError` unless ``results`` follows the benchmark format (see module docstring)."""
    if not isinstance(results, dict) or not isinstance(results.get("results"), list):
        raise DataError(source, "results must be a dict with a 'results' list")
    for i, row in enumerate(results["results"]):
        if not isinstance(row, dict):
            raise DataError(source, f"results[{i}] is not an object")
        missing = [k for k in REQUIRED_KEYS if k not in row]
        if missing:
            raise DataError(source, f"results[{i}] ({row.get('model', '?')}) lacks {', '.join(missing)}")
        if not isinstance(row["modalities"], (list, tuple)):
            raise DataError(source, f"results[{i}].modalities must be a list of modality names")


def read_results(path: str | Path) -> dict[str, Any]:
    """Load and check a benchmark JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc})") from None
    check_results(data, path)
    return data


def _pm(row: dict[str, Any], key: str) -> str:
    mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {std:.3f}"


def format_seconds(seconds: float | None) -> str:
    """``"42.1 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``."""
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


COLUMNS = ("model", "modalities", "WA", "UA", "macro-F1", "train time")


#: Extra columns when some row was trained with several seeds: the seed ensemble's scores
#: (`emofuse.training.kfold.KFoldResult.seed_ensemble`); the plain columns stay the mean over runs.
ENSEMBLE_COLUMNS = ("ensemble WA", "ensemble UA", "ensemble macro-F1")


def _rows(results: dict[str, Any] | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return results["results"] if isinstance(results, dict) else list(results)


def ensemble_cells(row: dict[str, Any]) -> list[str]:
    """`ENSEMBLE_COLUMNS` cells of a result row: ``mean ± std (N seeds)``, or ``n/a`` without a
    ``seed_ensemble`` entry (a row trained with one seed)."""
    ens = row.get("seed_ensemble")
    return [f"{_pm(ens, k)} ({ens['members']} seeds)" if ens else "n/a" for k in ("wa", "ua", "macro_f1")]


def table_columns(results: dict[str, Any] | Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """`COLUMNS`, plus `ENSEMBLE_COLUMNS` when any row has seed-ensemble scores."""
    return COLUMNS + (ENSEMBLE_COLUMNS if any(r.get("seed_ensemble") for r in _rows(results)) else ())


def table_rows(results: dict[str, Any] | Sequence[dict[str, Any]]) -> list[list[str]]:
    """Rows of formatted cells, one per result, in `table_columns` order. Seed-ensemble cells say
    how many seeds were averaged (``n/a`` for a row trained with one seed)."""
    rows = _rows(results)
    with_ensemble = len(table_columns(rows)) > len(COLUMNS)
    out = []
    for r in rows:
        cells = [str(r["model"]), "+".join(r["modalities"]), _pm(r, "wa"), _pm(r, "ua"), _pm(r, "macro_f1"),
                 format_seconds(r.get("train_seconds"))]
        if with_ensemble:
            cells += ensemble_cells(r)
        out.append(cells)
    return out


def markdown_table(results: dict[str, Any] | Sequence[dict[str, Any]]) -> str:
    """The results as a GitHub Markdown table (mean ± std)."""
    columns = table_columns(results)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for cells in table_rows(results):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def format_table(results: dict[str, Any] | Sequence[dict[str, Any]], title: str | None = None) -> str:
    """The results as a rich console table, rendered to plain text."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in table_columns(results):
        table.add_column(col, justify="left" if col in ("model", "modalities") else "right")
    for cells in table_rows(results):
        table.add_row(*cells)
    width = 120 if len(table.columns) == len(COLUMNS) else 200  # no wrapping of the ensemble cells
    console = Console(file=io.StringIO(), width=width, color_system=None, record=True)
    console.print(table)
    return console.export_text()


def _drop_rates(rows: Sequence[dict[str, Any]]) -> list[float]:
    rates = {float(k.split("_", 1)[1]) for r in rows for k in r.get("robustness", {}) if k.startswith("drop_")}
    return sorted(rates)


def robustness_table(results: dict[str, Any] | Sequence[dict[str, Any]]) -> str:
    """Markdown table of the ``--robustness`` tests: the modality-dropout rate the model was trained
    with, then WA with all modalities, each random drop rate and each single modality at test time
    ("" when no row has them)."""
    rows = [r for r in (results["results"] if isinstance(results, dict) else results) if r.get("robustness")]
    if not rows:
        return ""
    rates = _drop_rates(rows)
    singles = sorted({k for r in rows for k in r["robustness"] if k.startswith("only_")})
    cols = ["model", "train dropout", "all present"] + [f"drop {x:.1f}" for x in rates]
    cols += [k.replace("_", " ") for k in singles]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        rob = r["robustness"]
        dropout = r.get("modality_dropout")
        cells = [str(r["model"]), "n/a" if dropout is None else f"{dropout:g}", f"{r['wa_mean']:.3f}"]
        cells += [f"{rob[f'drop_{x:.1f}']['wa_mean']:.3f}" if f"drop_{x:.1f}" in rob else "n/a" for x in rates]
        cells += [f"{rob[k]['wa_mean']:.3f}" if k in rob else "n/a" for k in singles]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_robustness(results: dict[str, Any], path: str | Path, title: str | None = None) -> Path | None:
    """PNG of WA (mean ± std over folds) against the test-time modality drop rate, one line per
    model with robustness tests (rate 0 = every modality present). None when there is nothing to plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in results["results"] if r.get("robustness")]
    rates = _drop_rates(rows)
    if not rows or not rates:
        return None
    if not is_rank_zero():
        return Path(path)
    fig = Figure(figsize=(7.0, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for r in rows:
        rob = r["robustness"]
        xs = [0.0] + [x for x in rates if f"drop_{x:.1f}" in rob]
        mean = np.array([r["wa_mean"]] + [rob[f"drop_{x:.1f}"]["wa_mean"] for x in xs[1:]])
        std = np.array([r["wa_std"]] + [rob[f"drop_{x:.1f}"]["wa_std"] for x in xs[1:]])
        ax.plot(xs, mean, marker="o", label=str(r["model"]))
        ax.fill_between(xs, mean - std, mean + std, alpha=0.12)
    ax.set_xlabel("rate of randomly dropped modalities at test time")
    ax.set_ylabel("WA (mean ± std over folds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def write_results(out_dir: str | Path, results: dict[str, Any], *, name: str = "results") -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` into ``out_dir`` (atomically); returns both paths.

    The Markdown file lists the extra top-level scalar keys (dataset, protocol, ...) above the
    table."""
    out = Path(out_dir)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    check_results(results, json_path)
    write_json_atomic(json_path, results)
    lines = [f"# {results.get('title', name)}", ""]
    for key, value in results.items():
        if key in ("results", "title") or isinstance(value, (dict, list)):
            continue
        lines.append(f"- **{key}**: {value}")
    if lines[-1] != "":
        lines.append("")
    lines.append(markdown_table(results))
    robust = robustness_table(results)
    if robust:
        lines += ["", "## Missing-modality robustness (WA at test time)", "", robust]
    from emofuse.evaluation.shift import shift_table

    shift = shift_table(results)
    if shift:
        lines += ["", "## Shift protocols (docs/shift.md)", "", shift]
    write_text_atomic(md_path, "\n".join(lines))
    return json_path, md_path


def plot_confusion(
    cm: Sequence[Sequence[int]] | np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Save a confusion matrix as a PNG: colours and percentages are row-normalised (recall per
    true class), each cell also shows its count. Rows are true classes, columns predictions."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(cm, dtype=np.int64)
    n = len(labels)
    if counts.shape != (n, n):
        raise ValueError(f"confusion matrix shape {counts.shape} does not match {n} labels")
    if not is_rank_zero():
        return Path(path)
    totals = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)
    size = max(4.0, 0.75 * n + 2.0)
    fig = Figure(figsize=(size, size * 0.9))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="row-normalised")
    ax.set_xticks(range(n), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    for i in range(n):
        for j in range(n):
            colour = "white" if norm[i, j] > 0.5 else "black"
            ax.text(j, i, f"{norm[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=8,
                    color=colour)
    fig.tight_layout()
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())
    return path
