"""A study's tables (study.md) and plots (plots/*.png), from its study.json alone.

study.json (written by `study_lib.run_study`):
  "config":  the study config (methods, seeds, probes, ...);
  "runs":    {run: {"method", "seed", "args", "pair", "total_steps", "views_per_step"}};
  "probes":  {run | "random_init_s<seed>" | "pixels_<kind>": {task: {metric: value}}};
  "curves":  {run: {metric: [[step, value or null], ...]}} (metrics.jsonl, selected metrics);
  "timings": {"runs": {run: {"step_time_s", "wall_s"}}, "probes": {...}, ...}.

Every accuracy is shown in % as mean ± standard error over seeds, s.e. = std(ddof=1)/sqrt(n)
("± –" with one seed); paired differences AB_x − x are over the seeds both runs have.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from avrl_jax.evaluation.study_runs import VALUE_ACCURACY_PREFIX, WALLCLOCK_SUFFIX, run_name

MISSING = "–"
# (probe metric, column title) of the tables and the bar chart.
PROBE_COLUMNS = (
    ("linear/accuracy", "linear"),
    ("map/accuracy", "MAP"),
    ("knn/accuracy_k20", "kNN (k=20)"),
    ("decoder/accuracy", "decoder"),
)
PIXEL_LABELS = {"raw": "pixels: raw", "colour_invariant": "pixels: colour-invariant"}
CURVE_PLOTS = (
    "base/loss",
    "ab/loss",
    "ab/marginal_target_entropy",
    "ab/distinct_argmax",
    "ab/agreement",
)
LAST_FRACTION = 0.2  # value accuracy by IoU: averaged over the last 20% of training
VIEWS_NOTE = "equal views seen: every view counts (annotation crops + bootstrap views)"


def pixel_key(kind: str) -> str:
    return f"pixels_{kind}"


def random_init_key(seed: int) -> str:
    return f"random_init_s{seed}"


# --------------------------------------------------------------------------------------------
# Statistics.


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_se(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """(mean, standard error std(ddof=1)/sqrt(n)) of the finite values; s.e. None with one
    value, both None with none."""
    values = _finite(values)
    n = len(values)
    if not n:
        return None, None
    mean = sum(values) / n
    if n == 1:
        return mean, None
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def format_mean_se(values: Iterable[float | None], scale: float = 1.0, digits: int = 1) -> str:
    """`mean ± s.e.` of the values times `scale`; `mean ± –` with one value, `–` with none."""
    mean, se = mean_se(values)
    if mean is None:
        return MISSING
    se_text = MISSING if se is None else f"{se * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {se_text}"


def paired_differences(a: Mapping[Any, float | None], b: Mapping[Any, float | None]) -> list[float]:
    """a[s] - b[s] for every key s (seed) both have a finite value for, in a's order."""
    return [float(a[s]) - float(b[s]) for s in a if s in b and _finite([a[s]]) and _finite([b[s]])]


# --------------------------------------------------------------------------------------------
# Rows.


@dataclasses.dataclass(frozen=True)
class Row:
    """A table row: its label and its probe keys (one per seed; a run name for trained
    methods), with the seed of each."""

    label: str
    keys: dict[int, str]  # seed -> probe key
    trained: bool = False


def report_rows(study: Mapping[str, Any]) -> list[Row]:
    """Pixel baselines, random init, then each base method, its AB methods and its
    wall-clock-matched run, in the config's order."""
    config = study["config"]
    seeds = [int(s) for s in config["seeds"]]
    rows = [Row(PIXEL_LABELS.get(k, k), {0: pixel_key(k)}) for k in config["pixel_baselines"]]
    if config["random_init"]:
        rows.append(Row("random init", {s: random_init_key(s) for s in seeds}))
    method_row = lambda m: Row(m, {s: run_name(m, s) for s in seeds}, trained=True)
    listed = set()
    for base in (m["name"] for m in config["methods"] if not m.get("pair")):
        group = [base] + [m["name"] for m in config["methods"] if m.get("pair") == base]
        if base in config["wallclock_matched"]:
            group.append(base + WALLCLOCK_SUFFIX)
        rows += [method_row(m) for m in group]
        listed.update(group)
    rows += [method_row(m["name"]) for m in config["methods"] if m["name"] not in listed]
    return rows


def comparison_pairs(study: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(AB method, what it is compared with): its base, and the base's wall-clock-matched run."""
    config = study["config"]
    pairs = []
    for m in config["methods"]:
        base = m.get("pair")
        if base:
            pairs.append((m["name"], base))
            if base in config["wallclock_matched"]:
                pairs.append((m["name"], base + WALLCLOCK_SUFFIX))
    return pairs


def _probe_values(study, row: Row, task: str, metric: str) -> dict[int, float | None]:
    probes = study.get("probes", {})
    return {s: probes.get(key, {}).get(task, {}).get(metric) for s, key in row.keys.items()}


def _run_values(study, row: Row, field: str, section: str = "runs") -> list[float]:
    source = study.get(section, {})
    if section == "timings":
        source = source.get("runs", {})
    return [source[k][field] for k in row.keys.values() if k in source and field in source[k]]


def _integer_cell(values: Sequence[float]) -> str:
    if not values:
        return MISSING
    if len(set(values)) == 1:
        return f"{int(values[0])}"
    return format_mean_se(values, digits=0)


# --------------------------------------------------------------------------------------------
# Markdown.


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(study: Mapping[str, Any], command: str = "") -> str:
    """study.md: the settings, one accuracy table per task and the paired differences."""
    config = study["config"]
    seeds = list(config["seeds"])
    tasks = [p["name"] for p in config["probes"]]
    lines = ["# Study: annotation bootstrapping vs its base methods", ""]
    if command:
        lines.append(f"- Command: `{command}`")
    lines += [
        f"- Seeds: {len(seeds)} ({', '.join(str(s) for s in seeds)}); accuracies are test "
        "accuracy in %, mean ± s.e. over seeds (s.e. = std(ddof=1)/sqrt(n); "
        f"'± {MISSING}' with one seed). {MISSING}: not defined (MAP on pixels) or missing.",
        f"- Training config: `{config['train_config']}` with each method's args; common "
        f"overrides: `{dict(config['common_overrides'])}`.",
        f"- Views: {VIEWS_NOTE}; views/step is that count, so views seen = views/step x steps.",
        "- Wall-clock-matched runs (`<base>_wallclock`) train the base method for the AB run's "
        "training time: steps = round(AB steps x AB ms/step / base ms/step).",
        "",
        "## Methods",
        "",
    ]
    lines += _table(
        ["method", "args", "compared with", "overrides"],
        [
            [m["name"], f"`{m['args']}`", m.get("pair") or MISSING, f"`{m.get('overrides', {})}`"]
            for m in config["methods"]
        ],
    )
    rows = report_rows(study)
    header = ["encoder", *(title for _, title in PROBE_COLUMNS), "views/step", "steps", "ms/step"]
    for task in tasks:
        lines += ["", f"## Task `{task}`", ""]
        cells = []
        for row in rows:
            accuracy = [
                format_mean_se(_probe_values(study, row, task, metric).values(), scale=100)
                for metric, _ in PROBE_COLUMNS
            ]
            step_ms = [1000 * t for t in _run_values(study, row, "step_time_s", "timings")]
            cells.append(
                [
                    row.label,
                    *accuracy,
                    _integer_cell(_run_values(study, row, "views_per_step")),
                    _integer_cell(_run_values(study, row, "total_steps")),
                    format_mean_se(step_ms) if step_ms else MISSING,
                ]
            )
        lines += _table(header, cells)
    pairs = comparison_pairs(study)
    if pairs:
        lines += [
            "",
            "## Paired differences (AB − compared run, percentage points)",
            "",
            "Per seed, the AB run's accuracy minus the compared run's of the same seed; mean ± "
            "s.e. of those differences (n = seeds with both).",
            "",
        ]
        header = ["task", "pair", *(title for _, title in PROBE_COLUMNS), "n"]
        cells = []
        for task in tasks:
            for ab, other in pairs:
                a_row = Row(ab, {s: run_name(ab, s) for s in seeds})
                b_row = Row(other, {s: run_name(other, s) for s in seeds})
                diffs = [
                    paired_differences(
                        _probe_values(study, a_row, task, metric),
                        _probe_values(study, b_row, task, metric),
                    )
                    for metric, _ in PROBE_COLUMNS
                ]
                n = max(len(d) for d in diffs)
                cells.append(
                    [task, f"{ab} − {other}", *(format_mean_se(d, 100) for d in diffs), str(n)]
                )
        lines += _table(header, cells)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Plots.


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_probe_accuracy(study: Mapping[str, Any], path: str) -> None:
    """Bars per encoder row, one panel per (probe method, task); error bars = s.e."""
    plt = _pyplot()
    tasks = [p["name"] for p in study["config"]["probes"]]
    rows = report_rows(study)
    fig, axes = plt.subplots(
        len(PROBE_COLUMNS),
        len(tasks),
        figsize=(max(4.0, 0.45 * len(rows) + 1.5) * len(tasks), 3.2 * len(PROBE_COLUMNS)),
        squeeze=False,
    )
    for i, (metric, title) in enumerate(PROBE_COLUMNS):
        for j, task in enumerate(tasks):
            ax = axes[i][j]
            stats = [mean_se(_probe_values(study, row, task, metric).values()) for row in rows]
            means = [math.nan if m is None else 100 * m for m, _ in stats]
            errors = [0.0 if se is None else 100 * se for _, se in stats]
            ax.bar(range(len(rows)), means, yerr=errors, capsize=3, color=f"C{i}")
            for x, mean in enumerate(means):
                if math.isnan(mean):  # not defined (MAP on pixels) or missing
                    ax.text(x, 0, MISSING, ha="center", va="bottom", fontsize=8)
            ax.set_xticks(range(len(rows)))
            ax.set_xticklabels([row.label for row in rows], rotation=60, ha="right", fontsize=7)
            ax.set_title(f"{task}: {title}", fontsize=9)
            ax.set_ylabel("test accuracy (%)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bins(study) -> list[str]:
    names = {
        name[len(VALUE_ACCURACY_PREFIX) :]
        for curves in study.get("curves", {}).values()
        for name in curves
        if name.startswith(VALUE_ACCURACY_PREFIX)
    }
    return sorted(names, key=lambda b: float(b.split("-")[0]))


def late_mean(points: Sequence[Sequence], total_steps: int, fraction: float = LAST_FRACTION):
    """The mean of a curve's finite values over the last `fraction` of training (steps after
    (1 - fraction) * total_steps), or None."""
    start = (1 - fraction) * total_steps
    values = _finite(v for step, v in points if step > start)
    return sum(values) / len(values) if values else None


def value_accuracy_by_iou(study: Mapping[str, Any]) -> dict[str, dict[str, tuple]]:
    """{method: {bin: (mean, s.e.)}} of the AB runs' value accuracy per IoU bin, each run's
    averaged over its last 20% of training, then over seeds; bins with no value skipped."""
    out = {}
    bins = _bins(study)
    for row in report_rows(study):
        if not row.trained:
            continue
        per_bin = {}
        for name in bins:
            values = []
            for run in row.keys.values():
                points = study.get("curves", {}).get(run, {}).get(VALUE_ACCURACY_PREFIX + name)
                if points and run in study.get("runs", {}):
                    values.append(late_mean(points, study["runs"][run]["total_steps"]))
            mean, se = mean_se(values)
            if mean is not None:
                per_bin[name] = (mean, se)
        if per_bin:
            out[row.label] = per_bin
    return out


def plot_value_accuracy(study: Mapping[str, Any], path: str) -> None:
    plt = _pyplot()
    bins = _bins(study)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method, per_bin in value_accuracy_by_iou(study).items():
        xs = [i for i, b in enumerate(bins) if b in per_bin]
        means = [100 * per_bin[bins[i]][0] for i in xs]
        errors = [100 * (per_bin[bins[i]][1] or 0.0) for i in xs]
        ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, label=method)
    if not bins:
        ax.text(0.5, 0.5, "no AB runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(range(len(bins)))
    ax.set_xticklabels(bins)
    ax.set_xlabel("IoU of source and target view")
    ax.set_ylabel("value accuracy (%), last 20% of training")
    ax.set_title("argmax Q == argmax target, by IoU (mean ± s.e. over seeds)", fontsize=9)
    if bins:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def mean_curve(curves: Sequence[Sequence[Sequence]]) -> tuple[list[int], list[float]]:
    """Steps and the mean over runs of the finite values at each step any run logged."""
    by_step: dict[int, list[float]] = {}
    for points in curves:
        for step, value in points:
            by_step.setdefault(int(step), []).extend(_finite([value]))
    steps = [s for s in sorted(by_step) if by_step[s]]
    return steps, [sum(by_step[s]) / len(by_step[s]) for s in steps]


def plot_training_curves(study: Mapping[str, Any], path: str) -> None:
    """Losses and collapse diagnostics over steps, one line per method (mean over seeds)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(CURVE_PLOTS), figsize=(4 * len(CURVE_PLOTS), 3.4))
    for ax, metric in zip(axes, CURVE_PLOTS, strict=True):
        for row in report_rows(study):
            if not row.trained:
                continue
            runs = [study.get("curves", {}).get(run, {}).get(metric) for run in row.keys.values()]
            steps, means = mean_curve([points for points in runs if points])
            if steps:
                ax.plot(steps, means, label=row.label)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("step")
        if ax.get_lines():
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(study: Mapping[str, Any], workdir: str, command: str = "") -> list[str]:
    """Writes study.md and plots/*.png into `workdir`; returns their paths."""
    md_path = os.path.join(workdir, "study.md")
    with open(md_path, "w") as f:
        f.write(markdown(study, command))
    plots = os.path.join(workdir, "plots")
    os.makedirs(plots, exist_ok=True)
    paths = [md_path]
    for name, plot in (
        ("probe_accuracy.png", plot_probe_accuracy),
        ("value_accuracy_by_iou.png", plot_value_accuracy),
        ("training_curves.png", plot_training_curves),
    ):
        paths.append(os.path.join(plots, name))
        plot(study, paths[-1])
    return paths
