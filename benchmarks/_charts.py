"""PNG bar charts for the benchmark results (matplotlib with the file-only Agg backend).

Two kinds of picture:
  ratio_bars    one bar per case: minidl time / PyTorch time, with the target drawn as a
                dashed line and parity (1.0) as a thin line; bars over their target are red,
                within it blue, grey where the case has no target.
  stacked_bars  one horizontal bar per row split into parts (the profile: where minidl's
                step time goes), with an optional marker per row (PyTorch's step time).
"""
import matplotlib

matplotlib.use("Agg")  # write files only; never open a window

import matplotlib.pyplot as plt  # noqa: E402

OVER, UNDER, NO_TARGET = "#d62728", "#1f77b4", "#9e9e9e"  # over / within / without a target


def ratio_bars(ax, labels, ratios, target, title, ylabel="minidl / PyTorch (time)", targets=None,
               baseline=1.0, fmt="{:.2f}"):
    """Bars of ``ratios`` on ``ax`` with a dashed line at ``target`` and a thin line at ``baseline``.

    ``targets`` (optional, one per bar, None = no target for that bar) colours each bar by
    its own target; otherwise every bar is compared with ``target``. ``baseline=None`` draws
    no thin line (for values that are not ratios, e.g. seconds).
    """
    targets = targets or [target] * len(ratios)
    colours = [NO_TARGET if t is None else OVER if r > t else UNDER for r, t in zip(ratios, targets)]
    xs = range(len(ratios))
    ax.bar(xs, ratios, color=colours)
    for x, r in zip(xs, ratios):
        ax.text(x, r, fmt.format(r), ha="center", va="bottom", fontsize=8)
    if baseline is not None:
        ax.axhline(baseline, color="black", linewidth=0.8)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", linewidth=1.2, label=f"target {target}")
        ax.legend(loc="upper right", fontsize=8)
    elif any(t is not None for t in targets):  # targets per bar: a dashed mark over each bar
        label = "target"  # in the legend once
        for x, t in zip(xs, targets):
            if t is not None:
                ax.hlines(t, x - 0.4, x + 0.4, color="black", linestyle="--", linewidth=1.2, label=label)
                label = None
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks(list(xs))
    many = len(labels) > 4  # slanted labels when they would overlap
    ax.set_xticklabels(labels, rotation=30 if many else 0, ha="right" if many else "center", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, max(list(ratios) + [t or 0 for t in targets] + [baseline or 0]) * 1.15 or 1.0)


def save_ratio_chart(path, panels, suptitle):
    """One row of :func:`ratio_bars` panels; ``panels`` is a list of keyword dicts for it."""
    width = sum(max(4.5, 0.6 * len(p["labels"]) + 1.5) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        ratio_bars(ax, **panel)
    fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_stacked_chart(path, rows, parts, values, title, xlabel="ms per step", markers=None,
                       marker_label=None):
    """Horizontal stacked bars: ``values[i][j]`` = part ``parts[j]`` of row ``rows[i]``.

    ``markers[i]`` (optional) draws a black tick at that x on row i (e.g. PyTorch's time).
    """
    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.7 * len(rows)))
    colours = plt.get_cmap("tab10").colors
    left = [0.0] * len(rows)
    for j, part in enumerate(parts):
        widths = [v[j] for v in values]
        ax.barh(rows, widths, left=left, color=colours[j % len(colours)], label=part)
        left = [a + b for a, b in zip(left, widths)]
    if markers:
        ax.scatter(markers, rows, marker="|", s=600, color="black", zorder=3, label=marker_label)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
