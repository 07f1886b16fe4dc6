"""Matplotlib figures (Agg backend) for the experiment results written by the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mlcm_torch.physics.reinforcement import LABELS  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def plot_critical(result: dict, path: Path) -> Path:
    """J_D*(N): maximum over networks and per-network mean ± std (thesis Fig. 3.1)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for dyn, rows in result["dynamics"].items():
        n = [r["n"] for r in rows]
        line, = ax.plot(n, [r["j_d_star"] for r in rows], "o-", label=f"{dyn}: all networks")
        ax.errorbar(n, [r["j_d_star_mean"] for r in rows], yerr=[r["j_d_star_std"] for r in rows], fmt="s--",
                    color=line.get_color(), alpha=0.5, label=f"{dyn}: per-network mean ± std")
    ax.set_xscale("log")
    ax.set_xlabel("N")
    ax.set_ylabel(r"$J_D^*$")
    ax.set_title(f"Critical self-coupling ({result['parameters']['kind']} J)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_convergence(result: dict, path: Path) -> Path:
    """Mean convergence time vs J_D per N, sync and async (thesis Fig. 3.2)."""
    dyns = [d for d in ("sync", "async") if d in result["sizes"][0]]
    fig, axes = plt.subplots(1, len(dyns), figsize=(5.5 * len(dyns), 4), squeeze=False)
    j_d = np.asarray(result["j_d"])
    for ax, dyn in zip(axes[0], dyns):
        for row in result["sizes"]:
            curve = row[dyn]
            t = _nan(curve["mean_time"])
            ax.errorbar(j_d, t, yerr=_nan(curve["sem_time"]), fmt="o-", ms=3, label=f"N={row['n']}")
            fit = curve.get("fit", {})
            if "gamma" in fit:
                x = np.linspace(*fit["j_d_range"], 200)
                ax.plot(x, fit["amplitude"] * (x - fit["j_c"]) ** (-fit["gamma"]), ":", color="gray")
        ax.set_yscale("log")
        ax.set_xlabel(r"$J_D$")
        ax.set_ylabel("sweeps to converge" if dyn == "async" else "steps to converge")
        ax.set_title(f"{dyn} (dotted: fit $T\\propto(J_D-J_c)^{{-\\gamma}}$)")
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_fixed_points(result: dict, path: Path) -> Path:
    """Fixed-point entropy vs J_D: exact enumeration against ln(1 + erf(J_D/√2)) (thesis eq. 3.2),
    and its finite-size deviation."""
    fig, (ax, dev) = plt.subplots(1, 2, figsize=(11, 4))
    j_d = np.asarray(result["j_d"])
    closed = np.asarray(result["closed_form"])
    ax.plot(j_d, closed, "k-", lw=2, label=r"$\ln(1+\mathrm{erf}(J_D/\sqrt{2}))$")
    dev.axhline(0.0, color="k", lw=2)
    for row in result["sizes"]:
        measured, err = _nan(row["entropy_annealed"]), _nan(row["entropy_annealed_err"])
        line = ax.errorbar(j_d, measured, yerr=err, fmt="o", ms=3, label=f"N={row['n']} exact count")
        color = line[0].get_color()
        ax.plot(j_d, row["entropy_expected_finite_n"], "--", lw=1, color=color)
        dev.errorbar(j_d, measured - closed, yerr=err, fmt="o", ms=3, color=color, label=f"N={row['n']}")
        dev.plot(j_d, np.asarray(row["entropy_expected_finite_n"]) - closed, "--", lw=1, color=color)
    ax.set_xlabel(r"$J_D$")
    ax.set_ylabel(r"$\frac{1}{N}\ln\langle\#\mathrm{fixed\ points}\rangle$")
    ax.set_title("Fixed points (dashed: exact finite-N expectation)")
    ax.legend(fontsize=8)
    dev.set_xlabel(r"$J_D$")
    dev.set_ylabel("measured − closed form")
    dev.set_title("Finite-size deviation (dashed: exact expectation)")
    dev.legend(fontsize=8)
    return _save(fig, path)


def plot_accessibility(result: dict, path: Path) -> Path:
    """Fraction of initial states that converge vs J_D, sync vs async (arXiv 2510.11984)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for dyn in ("sync", "async"):
        if dyn in result:
            c = result[dyn]
            ax.errorbar(result["j_d"], c["fraction"], yerr=c["fraction_err"], fmt="o-", ms=3,
                        label=f"{dyn}: threshold {c['threshold']:.3f}" if c["threshold"] is not None else dyn)
    ax.axhline(0.5, color="gray", lw=0.5)
    ax.set_xlabel(r"$J_D$")
    ax.set_ylabel("fraction converged")
    ax.set_title(f"Accessibility, N={result['n']} ({result['parameters']['kind']} J)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_reinforcement(result: dict, path: Path) -> Path:
    """Mean iterations over the (d, a) plane with regime labels, one panel per N (thesis Fig. 3.3)."""
    panels = result["sizes"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    marks = dict(zip(LABELS, ("C", "I", "+", "−", "±")))
    for ax, p in zip(axes[0], panels):
        steps = np.asarray(p["mean_steps"])
        im = ax.imshow(steps, origin="lower", aspect="auto", cmap="viridis",
                       extent=(-0.5, len(p["a"]) - 0.5, -0.5, len(p["d"]) - 0.5))
        for i in range(len(p["d"])):
            for k in range(len(p["a"])):
                ax.text(k, i, marks[p["label"][i][k]], ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(p["a"])), [f"{a:g}" for a in p["a"]])
        ax.set_yticks(range(len(p["d"])), [f"{d:g}" for d in p["d"]])
        ax.set_xlabel("a (units of 1/√N)")
        ax.set_ylabel("d (≈N^d reinforced entries)")
        ax.set_title(f"N={p['n']}")
        fig.colorbar(im, ax=ax, label="mean iterations (T_max if not converged)")
    fig.suptitle("C chaotic · I intermediate · +/− trivial all+1/all−1 · ± both", fontsize=9)
    return _save(fig, path)


def plot_capacity(result: dict, path: Path) -> Path:
    """Probability of separability vs α = P/N, raw and relaxed, with Cover's curve (thesis §5.1)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for row in result["sizes"]:
        for key, style in (("raw", "o-"), ("relaxed", "s--")):
            c = row[key]
            fit = c.get("fit", {})
            tag = f" α_c={fit['alpha_c']:.2f}±{fit['alpha_c_err']:.2f}" if "alpha_c" in fit else ""
            ax.plot(c["alphas"], c["fraction_separable"], style, ms=3, label=f"N={row['n']} {key}{tag}")
        ax.plot(row["raw"]["alphas"], row["raw"]["cover"], ":", color="gray")
    ax.axvline(2.0, color="k", lw=0.5)
    ax.set_xlabel(r"$\alpha = P/N$")
    ax.set_ylabel("fraction separable")
    ax.set_title("Perceptron capacity (dotted: Cover)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_hopfield(result: dict, path: Path) -> Path:
    """Retrieval overlap vs load α per N (thesis ch. 2): zero temperature (left) and Glauber
    (right, when run), with α_c ≈ 0.138 marked."""
    keys = [k for k in ("zero_temperature", "glauber") if k in result["sizes"][0]]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for row in result["sizes"]:
            c = row[key]
            ac = c["alpha_c"]
            label = f"N={row['n']}: α_c≈{ac:.3f}" if ac is not None and math.isfinite(ac) else f"N={row['n']}"
            ax.errorbar(row["alphas"], c["overlap_mean"], yerr=c["overlap_err"], fmt="o-", ms=3, label=label)
        ax.axvline(0.138, color="gray", ls="--", lw=1, label="α_c = 0.138 (AGS)")
        ax.set_xlabel(r"$\alpha = P/N$")
        ax.set_ylabel("final overlap m")
        first = result["sizes"][0]
        ax.set_title("zero temperature, asynchronous" if key == "zero_temperature"
                     else f"Glauber β={first['beta']:g}, {first['sweeps']} sweeps")
        ax.legend(fontsize=8)
    fig.suptitle("Hopfield retrieval from a stored pattern", fontsize=10)
    return _save(fig, path)
