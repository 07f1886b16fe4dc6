"""Thesis chapter 7 (hyperparameters §7.1.1): Fig. 7.1 (MNIST), Fig. 7.2 (Fashion-MNIST),
Fig. 7.3 (fixed-threshold sparsity) and §7.2.2 (k-winners-take-all, left unwritten there)."""

from __future__ import annotations

from mlcm_torch.experiments.figures import common as c
from mlcm_torch.experiments.spec import Figure, Point, Scale

THESIS_NETWORK = dict(
    hidden=1000, num_layers=5, num_classes=10, j_d=0.1, lambda_in=6.0, lambda_left=[4.0] * 4,
    lambda_right=[2.0] * 4, lambda_out=12.0, protocol="thesis", max_sweeps=20, lr=0.01, robustness=0.0,
    readout="cross_entropy", readout_lr=0.1,
)
"""§7.1.1: 5 layers of N = 1000, λ_IN = 6, λ_L = 4, λ_R = 2, λ_OUT = 12, J_D = 0.1, zero-padded input.
η, ξ, ρ and the sweep budget are not given in the thesis: lightning_configs/mnist_thesis.yaml's."""

CONVERGING = {"network.init_args.j_d": 0.7}
"""The nearest configuration whose label-free relaxations converge: J_D at the J_D* of random
Gaussian networks of N = 1000 under synchronous updates (0.67–0.73 in docs/physics.md). Measured
(N = 1000, 3 epochs of 2,000 images, 300 test images): J_D = 0.1 / 0.3 / 0.5 / 0.7 leave 44 / 41 /
6 / 0 % of the label-free relaxations unconverged after 20 sweeps. See docs/experiments.md."""

ARMS = {
    "mlcm": "MLCM, thesis configuration (J_D = 0.1)",
    "mlcm-converging": "MLCM, J_D = 0.7 (converges)",
    "sln": "single-layer perceptron (SLN)",
}


COLORS = {"mlcm": "C0", "mlcm-converging": "C1", "sln": "C2"}


def _thesis_scales(published_epochs: int, published_seeds: int, dataset: str = "MNIST") -> dict:
    return {
        "smoke": Scale(seeds=1, epochs=2, hidden=64, train=300, val=100, test=200, train_eval=200,
                       params={"smoke_dim": {"binary": 48, "projected": 24}},
                       note=f"pipeline check: {dataset} projected to 48 (\"binary\") / 24 (\"projected\") dimensions "
                            f"so that N = 64 holds the zero-padded input; random prototypes without the image files"),
        "cpu": Scale(seeds=3, epochs=5, hidden=1000, train=5000, val=1000, test=2000, train_eval=1000,
                     note=f"N = 1000 and 5 layers as published, but 5,000 training images (of 55,000), 1,000 "
                          f"validation, 2,000 test, {5} epochs (of {published_epochs}), 3 seeds (of "
                          f"{published_seeds})"),
        "gpu": Scale(seeds=published_seeds, epochs=published_epochs, hidden=1000, train=None, val=5000, test=None,
                     train_eval=5000, note=f"published scale: N = 1000, 5 layers, 55,000 training / 5,000 validation / "
                                           f"10,000 test images, {published_epochs} epochs, {published_seeds} seeds"),
    }


def _image_grid(dataset: str):
    def grid(scale: Scale, preset: str) -> list:
        points = []
        for encoding in ("binary", "projected"):
            data = c.image_data(dataset, encoding, scale, preset=preset)
            width = c.data_width(data)
            for arm in ARMS:
                overrides = {"data": data, "trainer.max_epochs": scale.epochs,
                             "run": c.run_options(scale)}
                if arm == "sln":
                    overrides.update({"network": None, "model": c.model(c.PERCEPTRON, in_features=width,
                                                                          num_classes=10, lr=0.01, margin=0.0)})
                else:
                    overrides.update({"network.init_args.in_features": width,
                                      "network.init_args.hidden": scale.hidden})
                    if arm == "mlcm-converging":
                        overrides.update(CONVERGING)
                points.append(Point(f"{arm}/{encoding}", {"arm": arm, "encoding": encoding}, overrides))
        return points

    return grid


def _summarize_images(records: list) -> dict:
    groups = c.by_label(records)
    curves, rows = {}, []
    for label in sorted(groups):
        runs = groups[label]
        curves[label] = {key: c.curve(runs, key) for key in
                         ("train_acc", "train_acc_online", "val_acc", "test_acc", "test_not_converged",
                          "test_sweeps", "train_clamped_not_converged")}
        final = {key: c.final(runs, key) for key in ("train_acc", "val_acc", "test_acc", "test_acc_converged",
                                                     "test_not_converged", "test_sweeps")}
        curves[label]["final"] = final
        rows.append([label, c.cell(final["train_acc"]), c.cell(final["val_acc"]), c.cell(final["test_acc"]),
                     c.cell(final["test_acc_converged"]), c.cell(final["test_not_converged"]),
                     c.cell(final["test_sweeps"], 1)])
    notes = ["Accuracies are of the label-free relaxation's final state read out (train: a subset of the "
             "training images re-evaluated after each epoch). 'not converged' is the fraction of test "
             "relaxations that stopped at the sweep budget without a fixed point; 'acc (converged)' counts "
             "only the samples that reached one. The SLN has no dynamics."]
    return {"groups": curves, "table": {"columns": ["arm / data", "train acc", "val acc", "test acc",
                                                    "test acc (converged)", "test not converged", "sweeps"],
                                        "rows": rows}, "notes": notes}


def _plot_images(summary: dict, path) -> None:
    fig, axes = c.subplots(2, 2)
    for col, encoding in enumerate(("binary", "projected")):
        ax, nc = axes[0][col], axes[1][col]
        for label, group in summary["groups"].items():
            if not label.endswith("/" + encoding):
                continue
            arm = label.split("/")[0]
            color = COLORS.get(arm)
            c.band(ax, group["val_acc"]["epoch"], group["val_acc"], f"{arm} val", color=color)
            c.band(ax, group["test_acc"]["epoch"], group["test_acc"], f"{arm} test", linestyle="--", color=color)
            if arm != "sln":
                c.band(nc, group["test_not_converged"]["epoch"], group["test_not_converged"], arm, color=color)
        ax.set(title=f"{encoding}: accuracy (mean, 95 % CI)", xlabel="epoch", ylabel="accuracy")
        nc.set(title=f"{encoding}: label-free relaxations not converged", xlabel="epoch", ylabel="fraction",
               ylim=(-0.02, 1.02))
        c.legend(ax)
        c.legend(nc)
        for a in (ax, nc):
            a.xaxis.get_major_locator().set_params(integer=True)
    c.save(fig, path)


def _base(dataset: str) -> dict:
    return {"network": c.network(in_features=784, **THESIS_NETWORK, seed=0), "model": c.model(),
            "data": None, "trainer": {"max_epochs": 20}, "run": {}}


THESIS_MNIST = Figure(
    name="thesis-mnist", title="MLCM vs single-layer perceptron on binarized and projected MNIST (thesis Fig. 7.1)",
    protocol="5 layers of N = 1000, λ_IN = 6, λ_L = 4, λ_R = 2, λ_OUT = 12, J_D = 0.1, zero-padded input, "
             "thesis protocol (one relaxation with the label, perceptron update at its fixed point, cross-entropy "
             "readout); beside it the same network with J_D = 0.7 ≈ J_D* (the nearest configuration that converges) and "
             "the one-vs-all perceptron on the raw inputs; binarized MNIST (784) and MNIST projected to 100 "
             "dimensions; train/val/test accuracy and the not-converged fraction per epoch.",
    reference="thesis Fig. 7.1: MLCM above the SLN, with a ~5 % validation-accuracy advantage on projected MNIST "
              "(20 epochs, 10 seeds, 95 % CI); the thesis gives the figure, not the numbers",
    base=_base("mnist"), presets=_thesis_scales(20, 10), grid=_image_grid("mnist"),
    summarize=_summarize_images, plot=_plot_images)

THESIS_FMNIST = Figure(
    name="thesis-fmnist", title="MLCM vs single-layer perceptron on Fashion-MNIST and projected Fashion-MNIST "
                                "(thesis Fig. 7.2)",
    protocol=THESIS_MNIST.protocol.replace("MNIST", "Fashion-MNIST"),
    reference="thesis Fig. 7.2: MLCM above the SLN in validation accuracy (20 epochs, 10 seeds); no numbers given",
    base=_base("fmnist"), presets=_thesis_scales(20, 10, "Fashion-MNIST"), grid=_image_grid("fmnist"),
    summarize=_summarize_images, plot=_plot_images)


# ---------------------------------------------------------------------------------------------- sparsity
GAMMAS = (0.0, 0.025, 0.05, 0.1, 0.15, 0.2)
WTA_FRACTIONS = (0.5, 0.25, 0.1, 0.05, 0.02)


def _sparsity_scales(values_note: str) -> dict:
    return {
        "smoke": Scale(seeds=1, epochs=2, hidden=64, train=300, val=100, test=200, train_eval=200,
                       params={"smoke_dim": {"binary": 48}},
                       note="pipeline check: MNIST projected to 48 dimensions, N = 64"),
        "cpu": Scale(seeds=2, epochs=4, hidden=800, train=3000, val=1000, test=1000, train_eval=1000,
                     note=f"N = 800 (of 1000; the zero-padded input needs N ≥ 784), 3,000 training images, 4 epochs "
                          f"(of 25), 2 seeds (of 5); {values_note}"),
        "gpu": Scale(seeds=5, epochs=25, hidden=1000, train=None, val=5000, test=None, train_eval=5000,
                     note="published scale: N = 1000, 5 layers, 55,000 training / 5,000 validation / 10,000 test "
                          "images, 25 epochs, 5 seeds"),
    }


def _sparsity_grid(kind: str):
    def grid(scale: Scale, preset: str) -> list:
        data = c.image_data("mnist", "binary", scale, state_encoding="01", preset=preset)
        common = {"data": data, "trainer.max_epochs": scale.epochs, "run": c.run_options(scale),
                  "network.init_args.in_features": c.data_width(data), "network.init_args.hidden": scale.hidden,
                  "network.init_args.state_encoding": "01"}
        points = []
        if kind == "gamma":
            for gamma in GAMMAS:
                points.append(Point(f"gamma={gamma}", {"gamma": gamma},
                                    {**common, "network.init_args.sparsity_threshold": gamma}))
        else:
            for fraction in WTA_FRACTIONS:
                k = max(1, round(fraction * scale.hidden))
                points.append(Point(f"k/N={fraction}", {"k_over_n": fraction, "k": k},
                                    {**common, "network.init_args.k_winners": k}))
        return points

    return grid


def _summarize_sparsity(key: str):
    def summarize(records: list) -> dict:
        groups = c.by_label(records)
        order = sorted(groups, key=lambda label: groups[label][0]["params"][key])
        out, rows = {}, []
        for label in order:
            runs = groups[label]
            activity = c.final_vector(runs, "test_activity")
            final = {k: c.final(runs, k) for k in ("train_acc", "val_acc", "test_acc", "test_not_converged")}
            out[label] = {"x": runs[0]["params"][key], "activity": activity, "final": final,
                          "val_acc": c.curve(runs, "val_acc"), "train_acc": c.curve(runs, "train_acc"),
                          "test_not_converged": c.curve(runs, "test_not_converged")}
            rows.append([label, " / ".join(f"{a['mean']:.3f}" if a["mean"] is not None else "—" for a in activity),
                         c.cell(final["train_acc"]), c.cell(final["val_acc"]), c.cell(final["test_acc"]),
                         c.cell(final["test_not_converged"])])
        notes = ["δ^l: fraction of active neurons per layer (layers 1..L) in the label-free fixed points of the "
                 "test images at the last epoch ({0, 1} states)."]
        return {"key": key, "groups": out, "notes": notes,
                "table": {"columns": [key, "δ^l (layer 1 / … / L)", "train acc", "val acc", "test acc",
                                      "test not converged"], "rows": rows}}

    return summarize


def _plot_sparsity(summary: dict, path) -> None:
    fig, axes = c.subplots(1, 3)
    groups = summary["groups"]
    xs = [g["x"] for g in groups.values()]
    layers = max((len(g["activity"]) for g in groups.values()), default=0)
    for layer in range(layers):
        stats = [g["activity"][layer] if len(g["activity"]) > layer else {"mean": None, "ci": None}
                 for g in groups.values()]
        c.band(axes[0][0], xs, c.stat_series(stats), f"layer {layer + 1}")
    axes[0][0].set(title="activity δ^l at the last epoch", xlabel=summary["key"], ylabel="δ^l")
    for name in ("train_acc", "val_acc"):
        c.band(axes[0][1], xs, c.stat_series([g["final"][name] for g in groups.values()]), name)
    axes[0][1].set(title="final accuracy", xlabel=summary["key"], ylabel="accuracy")
    for label, g in groups.items():
        c.band(axes[0][2], g["val_acc"]["epoch"], g["val_acc"], label)
    axes[0][2].set(title="validation accuracy per epoch", xlabel="epoch", ylabel="accuracy")
    for ax in axes[0]:
        c.legend(ax)
    if summary["key"] == "k_over_n" and xs:
        for ax in axes[0][:2]:
            ax.set_xscale("log")
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.minorticks_off()
    axes[0][2].xaxis.get_major_locator().set_params(integer=True)
    c.save(fig, path)


def _sparsity_base() -> dict:
    return {"network": c.network(in_features=784, **THESIS_NETWORK, seed=0), "model": c.model(),
            "data": None, "trainer": {"max_epochs": 25}, "run": {}}


THESIS_SPARSITY = Figure(
    name="thesis-sparsity", title="Fixed-threshold sparsity with {0, 1} states (thesis Fig. 7.3)",
    protocol="the thesis MLCM (Fig. 7.1's configuration) with {0, 1} states z = θ(h − κ − γ) (eq. 7.1), "
             "γ ∈ {0, 0.025, 0.05, 0.1, 0.15, 0.2}, binarized MNIST; per-layer activity δ^l at the last epoch "
             "and train/validation accuracy per epoch.",
    reference="thesis Fig. 7.3: middle-layer activity falls by ~10 % from γ = 0 to 0.2, first and last layers stay "
              "at ~0.5; accuracy drops sharply, chance level beyond γ = 0.1 (25 epochs, 5 seeds)",
    base=_sparsity_base(), presets=_sparsity_scales("the six γ values as published"),
    grid=_sparsity_grid("gamma"), summarize=_summarize_sparsity("gamma"), plot=_plot_sparsity)

THESIS_WTA = Figure(
    name="thesis-wta", title="k-winners-take-all sparsity (thesis §7.2.2, left unwritten there)",
    protocol="the thesis MLCM with {0, 1} states where only the k neurons of largest field are active in each "
             "layer at every synchronous update, k/N ∈ {0.5, 0.25, 0.1, 0.05, 0.02}, binarized MNIST; the same "
             "measurements as Fig. 7.3.",
    reference="thesis §7.2.2 has headings only: no published result to compare with",
    base=_sparsity_base(), presets=_sparsity_scales("the five k/N values"),
    grid=_sparsity_grid("wta"), summarize=_summarize_sparsity("k_over_n"), plot=_plot_sparsity)

FIGURES = [THESIS_MNIST, THESIS_FMNIST, THESIS_SPARSITY, THESIS_WTA]
