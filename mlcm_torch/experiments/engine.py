"""The sweep engine: expand a figure's grid × seeds into run specs, run the unfinished ones in
worker processes (``concurrent.futures`` with the spawn context), inline, or on a cluster through
``submitit``, then summarize, plot and tabulate the finished runs.

Each run writes ``<out>/runs/<run_id>.json``; a run whose file exists is skipped, so an
interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures as futures
import copy
import json
import multiprocessing
import os
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Optional, Sequence

from mlcm_torch.experiments.spec import (
    ExperimentError,
    Figure,
    Point,
    apply_overrides,
    applies,
    run_id,
)

CLUSTERS = ("slurm", "local", "debug")
"""``--cluster`` values: submitit's executors (``local`` and ``debug`` run on this machine)."""


# ---------------------------------------------------------------------------------------------- planning
def plan(figure: Figure, preset: str, out: Path, *, seeds: Optional[int] = None,
         sets: Optional[dict] = None) -> list[dict]:
    """Every run of ``figure`` at ``preset``: one spec per grid point and seed, with its config
    (base ← point overrides ← ``sets`` ← seed), its id and the path of its record.

    A ``--set`` key is applied to the runs whose config has that option; one that no run has
    raises :class:`ExperimentError`.
    """
    scale = figure.scale(preset)
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ExperimentError(f"--seeds {seeds!r}: expected a positive integer")
    sets = dict(sets or {})
    points: list[Point] = figure.grid(scale, preset)
    configs = [apply_overrides(figure.base, point.overrides) for point in points]
    used = {key: False for key in sets}
    specs = []
    for point, config in zip(points, configs):
        applied = {}
        for key, value in sets.items():
            if applies(config, key):
                applied[key] = value
                used[key] = True
        config = apply_overrides(config, applied)
        overrides = {**point.overrides, **applied}
        count = point.seeds if point.seeds is not None else (seeds or scale.seeds)
        for seed in range(count):
            seeded = copy.deepcopy(config)
            for key in figure.seed_keys:
                if applies(seeded, key):
                    seeded = apply_overrides(seeded, {key: seed})
            rid = run_id(figure.name, overrides, seed, preset)
            spec = {"id": rid, "figure": figure.name, "preset": preset, "seed": seed, "label": point.label,
                    "params": point.params, "overrides": overrides, "config": seeded,
                    "device": "gpu" if preset == "gpu" else "cpu",
                    "path": str(Path(out) / "runs" / f"{rid}.json")}
            if preset == "smoke":
                spec["threads"] = 1  # tiny networks: more threads only add overhead
            specs.append(spec)
    unused = [key for key, hit in used.items() if not hit]
    if unused:
        raise ExperimentError(
            f"--set {unused[0]}: no run of figure {figure.name!r} has this option (keys look like "
            f"network.init_args.hidden, model.init_args.lr, data.init_args.limit_train, trainer.max_epochs, "
            f"run.train_eval_size; a network's own options go under network.init_args)")
    ids = [spec["id"] for spec in specs]
    if len(set(ids)) != len(ids):
        raise ExperimentError(f"figure {figure.name!r} has two grid points with the same overrides")
    return specs


def finished(spec: dict) -> Optional[dict]:
    """The record of a finished run, or None."""
    path = Path(spec["path"])
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ---------------------------------------------------------------------------------------------- executing
def _worker_init(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)


def _safe_execute(spec: dict) -> dict:
    """Run a spec; on failure return the error instead of raising (the message and a traceback)."""
    from mlcm_torch.experiments.run import execute

    try:
        return execute(spec)
    except Exception as error:  # noqa: BLE001 - reported per run by the engine
        return {"id": spec["id"], "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="run", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def execute_specs(specs: Sequence[dict], *, jobs: int = 1, cluster: Optional[str] = None,
                  cluster_options: Optional[dict] = None, out: Path, desc: str = "runs",
                  progress: bool = True, total: Optional[int] = None) -> list[dict]:
    """Run ``specs`` (all unfinished): ``jobs`` worker processes (spawned, each with
    ``OMP_NUM_THREADS`` = cores // jobs, at most ``$OMP_NUM_THREADS``; 1 at smoke), inline when
    ``jobs`` is 0, or through submitit with ``cluster``. Returns the failures ``[{"id", "error", "traceback"}]``; a failure leaves no
    record (a restart tries it again) but ``<out>/runs/<id>.error.txt``."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ExperimentError(f"--jobs {jobs!r}: expected an integer >= 0 (0 runs inline)")
    total = len(specs) if total is None else total
    failures: list[dict] = []
    if not specs:
        return failures
    spec_dir = Path(out) / "specs"
    spec_dir.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        (spec_dir / f"{spec['id']}.json").write_text(json.dumps(spec, indent=1))
    bar = _progress(total, total - len(specs), desc, progress)

    def done(result: dict, spec: dict) -> None:
        error_file = Path(spec["path"]).with_suffix(".error.txt")
        if "error" in result:
            failures.append(result)
            error_file.write_text(result.get("traceback", result["error"]))
            bar.write(f"run {spec['id']} ({spec['label']}, seed {spec['seed']}) failed: {result['error']}")
        elif error_file.exists():
            error_file.unlink()  # an earlier attempt's
        bar.update(1)

    try:
        if cluster is not None:
            _submitit(specs, out, cluster, cluster_options or {}, jobs, done)
        elif jobs == 0:
            for spec in specs:
                done(_safe_execute(spec), spec)
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # an explicit limit is kept
                threads = max(1, min(threads, int(os.environ["OMP_NUM_THREADS"])))
            specs = [dict(spec, threads=spec.get("threads") or threads) for spec in specs]
            for attempt in range(2):  # a pool whose worker died is replaced once for the runs it left
                specs = _run_pool(specs, jobs, threads, done, last_attempt=attempt == 1)
                if not specs:
                    break
                bar.write(f"a worker process died; {len(specs)} run(s) go to a new pool")
    finally:
        bar.close()
    return failures


def _run_pool(specs: list, jobs: int, threads: int, done, last_attempt: bool) -> list:
    """Run ``specs`` in ``jobs`` spawned workers; returns the specs to retry when a worker died
    (``BrokenProcessPool``: the pool then fails every run it had not finished), unless
    ``last_attempt``, when they are reported as failed."""
    context = multiprocessing.get_context("spawn")
    pool = futures.ProcessPoolExecutor(max_workers=min(jobs, len(specs)), mp_context=context,
                                       initializer=_worker_init, initargs=(threads,))
    retry = []
    try:
        pending = {pool.submit(_safe_execute, spec): spec for spec in specs}
        for future in futures.as_completed(pending):
            spec = pending[future]
            try:
                result = future.result()
            except futures.process.BrokenProcessPool as error:
                if not last_attempt:
                    retry.append(spec)
                    continue
                result = {"id": spec["id"], "error": f"a worker process died (killed? out of memory?): {error}"}
            except Exception as error:  # noqa: BLE001 - reported per run
                result = {"id": spec["id"], "error": f"{type(error).__name__}: {error}"}
            done(result, spec)
    except BaseException:  # Ctrl-C: drop the queued runs; the running ones finish and are kept
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return retry


def _submitit(specs: list, out: Path, cluster: str, options: dict, jobs: int, done) -> None:
    """Submit every spec as one job of a submitit job array and wait for them."""
    if cluster not in CLUSTERS:
        raise ExperimentError(f"--cluster {cluster!r}: expected one of {', '.join(CLUSTERS)}")
    try:
        import submitit
    except ImportError:
        raise ExperimentError(
            f"--cluster {cluster} needs submitit, an optional extra: pip install 'mlcm_torch[cluster]' "
            f"(or pip install submitit)") from None
    try:
        executor = submitit.AutoExecutor(folder=str(Path(out) / "submitit" / "%j"), cluster=cluster)
    except RuntimeError as error:  # e.g. no srun on this machine
        raise ExperimentError(f"--cluster {cluster}: {error}") from None
    parameters: dict[str, Any] = {"timeout_min": 240, "cpus_per_task": 4, "name": specs[0]["figure"]}
    if specs[0].get("device") == "gpu":
        parameters["gpus_per_node"] = 1
    if jobs and cluster == "slurm":
        parameters["slurm_array_parallelism"] = jobs
    parameters.update(options)
    threads = int(parameters.get("cpus_per_task", 1))
    specs = [dict(spec, threads=threads) for spec in specs]
    try:
        executor.update_parameters(**parameters)
    except Exception as error:  # noqa: BLE001 - submitit names the bad parameter
        raise ExperimentError(f"--cluster-opt: {error}") from None
    submitted = executor.map_array(_safe_execute, specs)
    pending = dict(zip(submitted, specs))
    while pending:
        for job in [job for job in pending if job.done()]:
            spec = pending.pop(job)
            try:
                result = job.result()
            except Exception as error:  # noqa: BLE001 - the job itself failed (timeout, node)
                result = {"id": spec["id"], "error": f"{type(error).__name__}: {error}"}
            done(result, spec)
        if pending:
            time.sleep(1.0 if cluster != "slurm" else 15.0)


# ---------------------------------------------------------------------------------------------- outputs
def _brief(value: Any) -> str:
    """A scale value for one line: long lists shortened, dicts as key = value."""
    if isinstance(value, list) and len(value) > 8:
        return f"[{value[0]}, {value[1]}, …, {value[-1]}] ({len(value)} values)"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_brief(v)}" for k, v in value.items()) + "}"
    return str(value)


def markdown(figure: Figure, report: dict) -> str:
    """The short Markdown table of a figure's report."""
    scale = report["scale"]
    lines = [f"# {figure.name}: {figure.title}", "", f"Command: `{report['command']}`", "",
             f"Preset `{report['preset']}`: " + ", ".join(f"{k} = {_brief(v)}" for k, v in scale.items() if k != "note")]
    if scale.get("note"):
        lines += ["", f"Scale: {scale['note']}"]
    if not report["complete"]:
        lines += ["", f"**Incomplete**: {len(report['failed'])} run(s) failed or are missing; "
                      f"rerun the command to retry them."]
    table = report["summary"].get("table")
    if table:
        lines += ["", "| " + " | ".join(table["columns"]) + " |", "|" + " --- |" * len(table["columns"])]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["rows"]]
    for note in report["summary"].get("notes", []):
        lines += ["", note]
    lines += ["", f"Published: {figure.reference}", "",
              f"Mean ± 95 % Student-t half-width over seeds (n = seeds). {report['runs_finished']} runs, "
              f"{report['wall_seconds']:.0f} s of run time; machine: {report['machine']}.", ""]
    return "\n".join(lines)


def _machine_line(records: list) -> str:
    if not records:
        return "—"
    m = records[0].get("machine", {})
    return f"{m.get('machine')}, {m.get('cpus')} cores, {m.get('threads')} threads/run, GPU: {m.get('gpu') or 'none'}"


def _dump(report: dict) -> str:
    """The report as JSON: indented, except one compact line per run (a sweep has hundreds)."""
    head = json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1, default=str, ensure_ascii=False)
    runs = ",\n  ".join(json.dumps(run, default=str, separators=(",", ":"), ensure_ascii=False)
                         for run in report["runs"])
    return head[:-2] + (',\n "runs": [\n  ' + runs + "\n ]\n}" if runs else ',\n "runs": []\n}')


def collect(figure: Figure, preset: str, specs: list, out: Path, *, command: str, sets: dict,
            failed: Sequence[dict] = ()) -> dict:
    """Summarize the finished runs of ``specs`` and write ``<out>/<figure>.json``, ``.png``, ``.md``."""
    out = Path(out)
    records = [record for record in (finished(spec) for spec in specs) if record is not None]
    summary = figure.summarize(records)
    scale = figure.scale(preset).describe()
    seeds_used = sorted({record["seed"] for record in records})
    scale["seeds"] = len(seeds_used) if records else scale["seeds"]
    report = {
        "figure": figure.name, "title": figure.title, "protocol": figure.protocol, "reference": figure.reference,
        "preset": preset, "scale": scale, "command": command, "sets": sets,
        "complete": len(records) == len(specs), "runs_planned": len(specs), "runs_finished": len(records),
        "failed": [{"id": f["id"], "error": f["error"]} for f in failed],
        "wall_seconds": sum(record.get("wall_seconds", 0.0) for record in records),
        "machine": _machine_line(records), "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "summary": summary, "runs": records,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{figure.name}.json").write_text(_dump(report))
    import matplotlib

    matplotlib.use("Agg")
    figure.plot(summary, out / f"{figure.name}.png")
    (out / f"{figure.name}.md").write_text(markdown(figure, report))
    return report


def run_figure(name: str, preset: str, out, *, seeds: Optional[int] = None, jobs: int = 1,
               sets: Optional[dict] = None, cluster: Optional[str] = None, cluster_options: Optional[dict] = None,
               progress: bool = True, command: Optional[str] = None, log=print, collect_only: bool = False) -> dict:
    """Plan, run what is unfinished (nothing with ``collect_only``: the outputs then cover the runs
    finished so far, e.g. while a long sweep is still running), and write the figure's outputs.
    Returns the report."""
    from mlcm_torch.experiments.figures import get_figure

    figure = get_figure(name)
    out = Path(out)
    specs = plan(figure, preset, out, seeds=seeds, sets=sets)
    records = {spec["id"]: finished(spec) for spec in specs}
    todo = [spec for spec in specs if records[spec["id"]] is None]
    stale = [spec for spec in specs if records[spec["id"]] is not None
             and records[spec["id"]].get("config") != spec["config"]]
    log(f"{figure.name} [{preset}]: {len(specs)} runs, {len(specs) - len(todo)} already finished in "
        f"{out / 'runs'}, {len(todo)} to run")
    if stale:
        log(f"note: {len(stale)} finished run(s) were made with a config that differs from the current one "
            f"(kept; delete their files in {out / 'runs'} to redo them)")
    failed = [] if collect_only else execute_specs(
        todo, jobs=jobs, cluster=cluster, cluster_options=cluster_options, out=out, desc=figure.name,
        progress=progress, total=len(specs))
    if command is None:
        command = " ".join(shlex.quote(part) for part in ["python", "-m", "mlcm_torch.experiments", name,
                                                          "--preset", preset, "--out", str(out)])
    report = collect(figure, preset, specs, out, command=command, sets=dict(sets or {}), failed=failed)
    log(f"wrote {out / (figure.name + '.json')}, .png, .md")
    return report
