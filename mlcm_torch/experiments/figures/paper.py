"""arXiv 2510.11984 ("Learning by Steering the Neural Dynamics"): width, self-coupling,
ferromagnetic chains, depth and hetero-association capacity. Entangled MNIST = MNIST through a
fixed Gaussian projection to 100 dimensions, then sign."""

from __future__ import annotations

from mlcm_torch.experiments.figures import common as c
from mlcm_torch.experiments.spec import Figure, Point, Scale

ENTANGLED_NETWORK = dict(
    in_features=100, hidden=1600, num_layers=1, num_classes=10, input_coupling="dense", j_d=0.5, lambda_in=5.0,
    lambda_out=0.6, protocol="steering", warmup_sweeps=1, max_sweeps=4, free_sweeps=5, robustness=0.9, lr=0.01,
    lr_in=0.06, weight_decay=0.005, lr_scaling="paper", readout="perceptron", readout_lr=0.1, readout_margin=3.0,
)
"""lightning_configs/entangled_mnist.yaml (0.8607 test accuracy after 5 epochs, README)."""


def _entangled(scale: Scale, preset: str) -> dict:
    return c.image_data("mnist", "projected", scale, dim=100, preset=preset)


def _base(network: dict | None = None, **run) -> dict:
    return {"network": network or c.network(**ENTANGLED_NETWORK, seed=0), "model": c.model(), "data": None,
            "trainer": {"max_epochs": 5}, "run": dict(run)}


def _common(scale: Scale, preset: str, **run) -> dict:
    data = _entangled(scale, preset)
    return {"data": data, "trainer.max_epochs": scale.epochs, "run": c.run_options(scale, **run),
            "network.init_args.in_features": c.data_width(data)}


# ---------------------------------------------------------------------------------------------- width
WIDTHS = (100, 200, 400, 800, 1600, 3200, 6400)


def _width_grid(scale: Scale, preset: str) -> list:
    points = []
    for width in scale.params["widths"]:
        common = _common(scale, preset)
        d = common["network.init_args.in_features"]
        points.append(Point(f"mlcm/H={width}", {"arm": "mlcm", "H": width},
                            {**common, "network.init_args.hidden": width}))
        mlp = {k: v for k, v in common.items() if not k.startswith("network.")}
        mlp.update({"network": None, "model": c.model(c.BINARY_MLP, in_features=d, hidden=width, num_classes=10,
                                                      lr=1e-3)})
        points.append(Point(f"binary-mlp/H={width}", {"arm": "binary-mlp", "H": width}, mlp))
    return points


def _summarize_xy(x_key: str, arm_key: str = "arm"):
    def summarize(records: list) -> dict:
        groups = c.by_label(records)
        arms: dict = {}
        for label, runs in groups.items():
            params = runs[0]["params"]
            arm = str(params.get(arm_key, ""))
            arms.setdefault(arm, []).append({
                "x": params[x_key], "label": label,
                **{k: c.final(runs, k) for k in ("train_acc", "test_acc", "test_acc_converged", "test_not_converged",
                                                 "test_sweeps")}})
        rows = []
        for arm in sorted(arms):
            arms[arm].sort(key=lambda p: p["x"])
            for p in arms[arm]:
                rows.append([arm, p["x"], c.cell(p["train_acc"]), c.cell(p["test_acc"]),
                             c.cell(p["test_acc_converged"]), c.cell(p["test_not_converged"]),
                             c.cell(p["test_sweeps"], 1)])
        return {"x": x_key, "arms": arms,
                "table": {"columns": [arm_key, x_key, "train acc", "test acc", "test acc (converged)",
                                      "test not converged", "sweeps"], "rows": rows}}

    return summarize


def _plot_xy(logx: bool = False, title: str = ""):
    def plot(summary: dict, path) -> None:
        fig, axes = c.subplots(1, 2)
        for arm, points in summary["arms"].items():
            xs = [p["x"] for p in points]
            c.band(axes[0][0], xs, c.stat_series([p["test_acc"] for p in points]), f"{arm}")
            if any(p["test_not_converged"]["mean"] is not None for p in points):
                c.band(axes[0][1], xs, c.stat_series([p["test_not_converged"] for p in points]), arm)
        axes[0][0].set(title=title or "test accuracy (mean, 95 % CI)", xlabel=summary["x"], ylabel="test accuracy")
        axes[0][1].set(title="label-free relaxations not converged", xlabel=summary["x"], ylabel="fraction",
                       ylim=(-0.02, 1.02))
        for ax in axes[0]:
            if logx:
                ax.set_xscale("log", base=2)
            c.legend(ax)
        c.save(fig, path)

    return plot


PAPER_WIDTH = Figure(
    name="paper-width", title="Test accuracy vs hidden size, MLCM one-layer network vs binary-activation MLP",
    protocol="entangled MNIST; the one-layer network of lightning_configs/entangled_mnist.yaml (dense input "
             "λ_IN = 5, J_D = 0.5, 1 + 4 + 5 steering sweeps, perceptron readout) with H hidden neurons, beside a "
             "backprop MLP Linear(100, H) → sign (straight-through) → Linear(H, 10) trained by Adam; test accuracy "
             "after the last epoch vs H.",
    reference="arXiv 2510.11984: accuracy of the one-layer network grows with H towards the binary MLP's "
              "(figure only; entangled MNIST 0.858 at H = 1600 after 5 epochs with the authors' code)",
    base=_base(), presets={
        "smoke": Scale(seeds=1, epochs=1, train=300, val=0, test=200, train_eval=200,
                       params={"widths": [16, 64], "smoke_dim": 24},
                       note="pipeline check: H ∈ {16, 64}, MNIST projected to 24 dimensions"),
        "cpu": Scale(seeds=2, epochs=3, train=10000, val=0, test=2000, train_eval=1000,
                     params={"widths": [100, 200, 400, 800, 1600]},
                     note="H up to 1600 (of 6400), 10,000 training images, 3 epochs, 2 seeds"),
        "gpu": Scale(seeds=5, epochs=5, train=None, val=0, test=None, train_eval=5000,
                     params={"widths": list(WIDTHS)}, note="H ∈ {100, …, 6400}, full data, 5 epochs, 5 seeds"),
    },
    grid=_width_grid, summarize=_summarize_xy("H"), plot=_plot_xy(logx=True))


# ---------------------------------------------------------------------------------------------- self-coupling
def _self_coupling_grid(scale: Scale, preset: str) -> list:
    points = []
    for j_d in scale.params["j_d"]:
        points.append(Point(f"J_D={j_d}", {"arm": "mlcm", "j_d": j_d},
                            {**_common(scale, preset), "network.init_args.hidden": scale.hidden,
                             "network.init_args.j_d": j_d}))
    physics = dict(scale.params["physics"], n=scale.hidden)
    points.append(Point("physics", {"arm": "physics"}, {"network": None, "data": None,
                                                        "run": {"task": "physics", "physics": physics}}, seeds=1))
    return points


def _summarize_self_coupling(records: list) -> dict:
    physics = [r for r in records if r["params"].get("arm") == "physics"]
    summary = _summarize_xy("j_d")([r for r in records if r["params"].get("arm") != "physics"])
    if physics:
        p = physics[0]["physics"]
        summary["physics"] = {"n": p["n"], "threshold": p["threshold"], "j_d_star": p["j_d_star"],
                              "j_d_star_mean": p["j_d_star_mean"], "j_d": p["accessibility"]["j_d"],
                              "fraction": p["accessibility"]["sync"]["fraction"]}
        summary["notes"] = [f"Random Gaussian networks of N = {p['n']} (synchronous updates, mlcm_torch.physics): "
                            f"accessibility threshold (half of the random initial states converge) J_D = "
                            f"{p['threshold'] if p['threshold'] is None else round(p['threshold'], 3)}; J_D* (every "
                            f"sampled state converges) = {round(p['j_d_star'], 3)} (max over networks; mean "
                            f"{round(p['j_d_star_mean'], 3)})."]
    return summary


def _plot_self_coupling(summary: dict, path) -> None:
    physics = summary.get("physics")
    if not physics:
        _plot_xy(title="test accuracy vs J_D")(summary, path)
        return
    fig, axes = c.subplots(1, 2)
    for arm, points in summary["arms"].items():
        xs = [p["x"] for p in points]
        c.band(axes[0][0], xs, c.stat_series([p["test_acc"] for p in points]), "test accuracy")
        c.band(axes[0][1], xs, c.stat_series([p["test_not_converged"] for p in points]), "MLCM, not converged")
    for ax in axes[0]:
        if physics["threshold"] is not None:
            ax.axvline(physics["threshold"], color="k", linestyle=":", label=f"accessibility threshold (N={physics['n']})")
        ax.axvline(physics["j_d_star"], color="r", linestyle="--", label=f"J_D* (N={physics['n']})")
    twin = axes[0][0].twinx()
    twin.plot(physics["j_d"], physics["fraction"], color="gray", alpha=0.6, label="random net: fraction converged")
    twin.set_ylabel("fraction of random states converging", color="gray")
    axes[0][0].set(title="accuracy vs self-coupling", xlabel="J_D", ylabel="test accuracy")
    axes[0][1].set(title="label-free relaxations not converged", xlabel="J_D", ylabel="fraction", ylim=(-0.02, 1.02))
    for ax in axes[0]:
        c.legend(ax, loc="lower right")
    c.save(fig, path)


JD_VALUES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5]

PAPER_SELF_COUPLING = Figure(
    name="paper-self-coupling", title="Accuracy vs self-coupling J_D, with the accessibility threshold and J_D*",
    protocol="entangled MNIST, the one-layer network of entangled_mnist.yaml with N neurons and J_D swept over "
             "[0, 1.5]; on the same axis the accessibility threshold and J_D* that mlcm_torch.physics measures for "
             "random Gaussian networks of the same N (synchronous dynamics, as the network's).",
    reference="arXiv 2510.11984: performance tied to the phase transition — accuracy rises where the fixed "
              "points become accessible (threshold ≈ 0.7 synchronous at N = 1000 in docs/physics.md)",
    base=_base(), presets={
        "smoke": Scale(seeds=1, epochs=1, hidden=48, train=300, val=0, test=200, train_eval=200,
                       params={"j_d": JD_VALUES, "smoke_dim": 24,
                               "physics": {"j_d_values": [0.0, 0.5, 1.0, 1.5], "n_networks": 2, "n_states": 8,
                                           "max_steps": 50, "critical_networks": 2, "critical_states": 4,
                                           "critical_max_steps": 100}},
                       note="pipeline check: N = 48, 8 J_D values, 300 images, 1 epoch"),
        "cpu": Scale(seeds=2, epochs=3, hidden=400, train=10000, val=0, test=2000, train_eval=1000,
                     params={"j_d": JD_VALUES,
                             "physics": {"j_d_values": [round(0.05 * i, 2) for i in range(31)], "n_networks": 4,
                                         "n_states": 32, "max_steps": 200, "critical_networks": 4,
                                         "critical_states": 16, "critical_max_steps": 1000}},
                     note="N = 400 (of 1600), 10,000 training images, 3 epochs, 2 seeds, 8 J_D values"),
        "gpu": Scale(seeds=5, epochs=5, hidden=1600, train=None, val=0, test=None, train_eval=5000,
                     params={"j_d": [round(0.1 * i, 1) for i in range(16)],
                             "physics": {"j_d_values": [round(0.025 * i, 3) for i in range(61)], "n_networks": 8,
                                         "n_states": 64, "max_steps": 1000, "critical_networks": 8,
                                         "critical_states": 32, "critical_max_steps": 1000}},
                     note="N = 1600, full data, 5 epochs, 5 seeds, 16 J_D values"),
    },
    grid=_self_coupling_grid, summarize=_summarize_self_coupling, plot=_plot_self_coupling)


# ---------------------------------------------------------------------------------------------- ferromagnetic
def _chain_jd0(hidden: int) -> dict:
    layer = {"class_path": "mlcm_torch.RecurrentLayer",
             "init_args": {"size": hidden, "j_d": 0.0, "lr": 0.005, "weight_decay": 0.005, "robustness": 0.9}}
    couplings = [
        {"class_path": "mlcm_torch.InputCoupling", "init_args": {"post": 0, "strength": 5.0, "kind": "dense", "lr": 0.03}},
        {"class_path": "mlcm_torch.InputCoupling", "init_args": {"post": 1, "strength": 5.0, "kind": "dense", "lr": 0.03}},
        {"class_path": "mlcm_torch.OneToOne", "init_args": {"post": 1, "pre": 0, "strength": 6.0}},
        {"class_path": "mlcm_torch.OneToOne", "init_args": {"post": 0, "pre": 1, "strength": 6.0, "phases": "always"}},
        {"class_path": "mlcm_torch.LabelCoupling", "init_args": {"post": -1, "strength": 0.6}},
    ]
    return c.network("mlcm_torch.Network", in_features=100, num_classes=10, layers=[layer, layer],
                     couplings=couplings, dynamics={"protocol": "steering", "warmup_sweeps": 1, "max_sweeps": 10,
                                                    "free_sweeps": 10},
                     readout={"rule": "perceptron", "lr": 0.1, "margin": 3.0, "weight_decay": 0.005},
                     lr_scaling="paper", seed=0)


def _ferro_grid(scale: Scale, preset: str) -> list:
    points = []
    for strength_in in scale.params["lambda_in"]:
        for lam in scale.params["lambda"]:
            overrides = _common(scale, preset)
            overrides.update({
                "network.init_args.layers.0.init_args.size": scale.hidden,
                "network.init_args.layers.1.init_args.size": scale.hidden,
                "network.init_args.couplings.0.init_args.strength": strength_in,
                "network.init_args.couplings.1.init_args.strength": strength_in,
                "network.init_args.couplings.2.init_args.strength": lam,
                "network.init_args.couplings.3.init_args.strength": lam})
            points.append(Point(f"lambda_in={strength_in}/lambda={lam}", {"arm": f"λ_IN={strength_in}",
                                                                          "lambda": lam}, overrides))
    return points


PAPER_FERROMAGNETIC = Figure(
    name="paper-ferromagnetic", title="J_D = 0 chains held by one-to-one couplings: accuracy vs λ",
    protocol="entangled MNIST; 2 layers with J_D = 0, the input into both (dense, learnable), coupled one-to-one "
             "with strength λ in both directions in every phase (lightning_configs/chain_jd0.yaml with λ swept over "
             "[0, 5]), for two input strengths λ_IN; test accuracy and not-converged fraction vs λ.",
    reference="arXiv 2510.11984: the cortex-inspired alternative to self-couplings — one-to-one couplings between "
              "layers make the fixed points accessible without J_D (figure only)",
    base=_base(_chain_jd0(1600)), presets={
        "smoke": Scale(seeds=1, epochs=1, hidden=48, train=300, val=0, test=200, train_eval=200,
                       params={"lambda": [0.0, 5.0], "lambda_in": [2.5, 5.0], "smoke_dim": 24},
                       note="pipeline check: λ ∈ {0, 5}, N = 48"),
        "cpu": Scale(seeds=2, epochs=2, hidden=400, train=5000, val=0, test=2000, train_eval=1000,
                     params={"lambda": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "lambda_in": [2.5, 5.0]},
                     note="N = 400 (of 1600), 5,000 training images, 2 epochs, 2 seeds, 6 λ values"),
        "gpu": Scale(seeds=5, epochs=5, hidden=1600, train=None, val=0, test=None, train_eval=5000,
                     params={"lambda": [0.5 * i for i in range(11)], "lambda_in": [2.5, 5.0]},
                     note="N = 1600, full data, 5 epochs, 5 seeds, 11 λ values"),
    },
    grid=_ferro_grid, summarize=_summarize_xy("lambda"), plot=_plot_xy(title="test accuracy vs λ (one-to-one)"))


# ---------------------------------------------------------------------------------------------- depth
def _depth_grid(scale: Scale, preset: str) -> list:
    points = []
    for layers in scale.params["layers"]:
        overrides = _common(scale, preset, probe=True, probe_train_size=scale.params["probe_train"])
        overrides.update({"network.init_args.hidden": scale.hidden, "network.init_args.num_layers": layers,
                          "network.init_args.lambda_left": scale.params["lambda_left"],
                          "network.init_args.lambda_right": scale.params["lambda_right"]})
        points.append(Point(f"L={layers}", {"L": layers}, overrides))
    return points


def _summarize_depth(records: list) -> dict:
    groups = c.by_label(records)
    out, rows = {}, []
    for label in sorted(groups, key=lambda l: groups[l][0]["params"]["L"]):
        runs = groups[label]
        probes = [r["probe"] for r in runs if r.get("probe")]
        width = max((len(p["test_acc"]) for p in probes), default=0)
        layer_stats = [c.mean_ci(p["test_acc"][i] for p in probes) for i in range(width)]
        probe_nc = c.mean_ci(p["test_not_converged"] for p in probes)
        readout = c.final(runs, "test_acc")
        out[label] = {"L": runs[0]["params"]["L"], "probe": layer_stats, "readout": readout,
                      "probe_not_converged": probe_nc, "test_not_converged": c.final(runs, "test_not_converged")}
        rows.append([label, c.cell(readout), " / ".join(f"{s['mean']:.3f}" for s in layer_stats if s["mean"] is not None),
                     c.cell(out[label]["test_not_converged"])])
    notes = ["Linear probes: ridge least-squares readouts of one-hot ±1 targets fitted on the label-free fixed "
             "points of training images (first entry: the raw input), scored on the test set."]
    return {"groups": out, "notes": notes,
            "table": {"columns": ["depth", "readout test acc", "probe test acc (input / layer 1 / …)",
                                  "test not converged"], "rows": rows}}


def _plot_depth(summary: dict, path) -> None:
    fig, axes = c.subplots(1, 2)
    for label, g in summary["groups"].items():
        c.band(axes[0][0], list(range(len(g["probe"]))), c.stat_series(g["probe"]), label)
    axes[0][0].set(title="linear probe per layer (0 = input)", xlabel="layer", ylabel="probe test accuracy")
    groups = list(summary["groups"].values())
    c.band(axes[0][1], [g["L"] for g in groups], c.stat_series([g["readout"] for g in groups]), "readout")
    c.band(axes[0][1], [g["L"] for g in groups],
           c.stat_series([g["probe"][-1] if g["probe"] else {"mean": None, "ci": None} for g in groups]),
           "probe, last layer")
    axes[0][1].set(title="accuracy vs depth", xlabel="L", ylabel="test accuracy")
    for ax in axes[0]:
        c.legend(ax)
    c.save(fig, path)


PAPER_DEPTH = Figure(
    name="paper-depth", title="Depth: linear-probe accuracy of each layer's fixed points, and readout accuracy",
    protocol="entangled MNIST; chains of L = 1..5 layers (the entangled_mnist.yaml layer, dense input into layer 1, "
             "one-to-one λ_L forward always on and λ_R backward with the label, steering), after training a "
             "ridge linear probe on each layer's label-free fixed points (and on the input) of training images, "
             "test accuracy per layer; and the trained readout's test accuracy vs L.",
    reference="arXiv 2510.11984: depth develops hierarchical representations (probe accuracy rising with the "
              "layer) — figure only",
    base=_base(), presets={
        "smoke": Scale(seeds=1, epochs=1, hidden=48, train=300, val=0, test=200, train_eval=200,
                       params={"layers": [1, 2, 3], "probe_train": 300, "lambda_left": 2.0, "lambda_right": 1.0,
                               "smoke_dim": 24},
                       note="pipeline check: L ∈ {1, 2, 3}, N = 48"),
        "cpu": Scale(seeds=2, epochs=2, hidden=400, train=5000, val=0, test=2000, train_eval=1000,
                     params={"layers": [1, 2, 3, 4, 5], "probe_train": 5000, "lambda_left": 2.0,
                             "lambda_right": 1.0},
                     note="N = 400 (of 1600), 5,000 training images, 2 epochs, 2 seeds"),
        "gpu": Scale(seeds=5, epochs=5, hidden=1600, train=None, val=0, test=None, train_eval=5000,
                     params={"layers": [1, 2, 3, 4, 5], "probe_train": 20000, "lambda_left": 2.0,
                             "lambda_right": 1.0},
                     note="N = 1600, full data, 5 epochs, 5 seeds, probes fitted on 20,000 training images"),
    },
    grid=_depth_grid, summarize=_summarize_depth, plot=_plot_depth)


# ---------------------------------------------------------------------------------------------- hetero capacity
HETERO_NETWORK = dict(
    in_features=100, hidden=100, num_layers=1, num_classes=10, input_coupling="dense", j_d=0.5, lambda_in=2.0,
    lambda_left=2.0, lambda_right=1.0, lambda_out=1.0, protocol="steering", max_sweeps=7, lr=0.05, lr_in=0.05,
    robustness=0.5, readout="perceptron", readout_margin=1.0,
)
"""lightning_configs/hetero.yaml's network, with λ_L = 2, λ_R = 1 between layers for L > 1."""


def _hetero_grid(scale: Scale, preset: str) -> list:
    n, targets = scale.hidden, scale.params["targets"]
    points = []
    for layers in scale.params["layers"]:
        for alpha in scale.params["alphas"]:
            p = max(1, round(alpha * n))
            data = {"class_path": "mlcm_torch.data.SyntheticDataModule",
                    "init_args": {"task": "hetero", "in_features": n, "num_classes": targets, "train_size": p,
                                  "batch_size": scale.batch_size, "shuffle_seed": 0, "sample_seed": 0}}
            overrides = {"data": data, "trainer.max_epochs": scale.epochs,
                         "run": {"train_eval_size": None, "eval_splits": ["train"]},
                         "network.init_args.in_features": n, "network.init_args.hidden": n,
                         "network.init_args.num_layers": layers, "network.init_args.num_classes": targets}
            points.append(Point(f"L={layers}/alpha={alpha}", {"L": layers, "alpha": alpha, "P": p}, overrides))
    return points


def _success(record: dict) -> bool:
    """Every stored pair recalled by the label-free relaxation (whole target vector right) and every
    one of those relaxations at a fixed point."""
    return last(record, "train_acc") == 1.0 and last(record, "train_not_converged") == 0.0


last = c.last


def _summarize_hetero(records: list) -> dict:
    by_depth: dict = {}
    for record in records:
        by_depth.setdefault(record["params"]["L"], []).append(record)
    out, rows = {}, []
    for layers in sorted(by_depth):
        runs = by_depth[layers]
        seeds = sorted({r["seed"] for r in runs})
        alphas = sorted({r["params"]["alpha"] for r in runs})
        capacity = []
        for seed in seeds:
            ok = [r["params"]["alpha"] for r in runs if r["seed"] == seed and _success(r)]
            capacity.append(max(ok) if ok else 0.0)
        success_rate = {str(a): c.mean_ci(float(_success(r)) for r in runs if r["params"]["alpha"] == a)["mean"]
                        for a in alphas}
        recall = {str(a): c.mean_ci(last(r, "train_acc") for r in runs if r["params"]["alpha"] == a) for a in alphas}
        stat = c.mean_ci(capacity)
        out[str(layers)] = {"L": layers, "alpha_max": stat, "per_seed": capacity, "success_rate": success_rate,
                            "recall": recall, "alphas": alphas}
        rows.append([layers, c.cell(stat, 2), ", ".join(f"{a}: {success_rate[str(a)]:.2f}" for a in alphas)])
    notes = ["Success at α: after the last epoch the label-free relaxation of every one of the P = αN stored "
             "inputs reached a fixed point and the readout recalled its whole ±1 target vector. α_max per seed is "
             "the largest α of the grid with success (0 if none)."]
    return {"groups": out, "notes": notes,
            "table": {"columns": ["L", "largest α with 100 % recall", "success rate per α"], "rows": rows}}


def _plot_hetero(summary: dict, path) -> None:
    fig, axes = c.subplots(1, 2)
    groups = list(summary["groups"].values())
    c.band(axes[0][0], [g["L"] for g in groups], c.stat_series([g["alpha_max"] for g in groups]), "α_max", bounds=(0.0, None))
    axes[0][0].set(title="hetero-association capacity vs depth", xlabel="L", ylabel="largest α = P/N recalled")
    for g in groups:
        c.band(axes[0][1], g["alphas"], c.stat_series([g["recall"][str(a)] for a in g["alphas"]]), f"L={g['L']}")
    axes[0][1].set(title="fraction of pairs recalled (label-free)", xlabel="α = P/N", ylabel="recall")
    for ax in axes[0]:
        c.legend(ax)
    c.save(fig, path)


PAPER_HETERO = Figure(
    name="paper-hetero-capacity", title="Hetero-association capacity vs depth",
    protocol="P = αN random ±1 inputs of dimension N mapped to random ±1 targets of dimension C = 10 "
             "(SyntheticDataModule task='hetero'); chains of L = 1..4 layers of N neurons (hetero.yaml's layer); "
             "the largest α on the grid at which, after training, every stored pair is recalled by the label-free "
             "relaxation (at a fixed point), per seed; mean and 95 % CI over seeds per L.",
    reference="arXiv 2510.11984: depth increases hetero-association capacity (figure only)",
    base={"network": c.network(**HETERO_NETWORK, seed=0), "model": c.model(), "data": None,
          "trainer": {"max_epochs": 30}, "run": {}},
    presets={
        "smoke": Scale(seeds=2, epochs=2, hidden=32, batch_size=8, train_eval=None,
                       params={"layers": [1, 2, 3, 4], "alphas": [0.25, 0.5], "targets": 10},
                       note="pipeline check: N = 32, α ∈ {0.25, 0.5}, 2 epochs"),
        "cpu": Scale(seeds=3, epochs=30, hidden=100, batch_size=10, train_eval=None,
                     params={"layers": [1, 2, 3, 4], "alphas": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0], "targets": 10},
                     note="N = 100, 30 epochs, 3 seeds, α ∈ {0.25, …, 2}"),
        "gpu": Scale(seeds=10, epochs=100, hidden=400, batch_size=10, train_eval=None,
                     params={"layers": [1, 2, 3, 4], "alphas": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0],
                             "targets": 10},
                     note="N = 400, 100 epochs, 10 seeds"),
    },
    grid=_hetero_grid, summarize=_summarize_hetero, plot=_plot_hetero,
    seed_keys=("network.init_args.seed", "data.init_args.shuffle_seed", "data.init_args.sample_seed"))

FIGURES = [PAPER_WIDTH, PAPER_SELF_COUPLING, PAPER_FERROMAGNETIC, PAPER_DEPTH, PAPER_HETERO]
