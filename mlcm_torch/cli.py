"""Command line: ``mlcm`` / ``lightning`` / ``python -m mlcm_torch`` — LightningCLI with
``fit``, ``validate``, ``test`` and ``predict``, ``class_path`` configs and ``--print_config``.

Any :class:`~mlcm_torch.training.ClassifierModule` (``MLCMClassifier``, the baselines) and
any LightningDataModule can be named by ``class_path``; without one, the model is
``MLCMClassifier`` and the data ``MNISTDataModule``.

A bad value or an unknown option prints a short message naming the option, the value and
what is allowed (with a "did you mean" for typos) and exits with code 2, instead of
jsonargparse's usage dump; a ValueError of a constructor comes out the same way. A run that
fails before its first batch leaves no empty log folder behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import inspect
import logging
import os
import re
import shutil
import sys
import textwrap
import traceback
import warnings
from pathlib import Path
from typing import Any, Iterable, Optional

import lightning as L
from jsonargparse import ArgumentError, DefaultHelpFormatter, Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from mlcm_torch.training import ClassifierModule

DESCRIPTION = """\
Train and evaluate Multi-Layer Chain Models (binary attractor networks that learn by local
rules) and their baselines with Lightning.

Subcommands: fit (train), validate, test, predict (writes predictions.pt). Ready-made configs
are in lightning_configs/ (mnist.yaml, entangled_mnist.yaml, mnist_thesis.yaml, ...); any
option can be changed on the command line.

Examples:
  mlcm fit --config lightning_configs/mnist.yaml
  mlcm fit --config lightning_configs/mnist.yaml --trainer.max_epochs=1 --data.init_args.limit_train=5000
  mlcm fit --config lightning_configs/mnist.yaml --ckpt_path lightning_logs/mnist/version_0/checkpoints/last.ckpt
  mlcm test --config lightning_configs/mnist.yaml --ckpt_path <checkpoint>
  mlcm fit --config lightning_configs/mnist.yaml --print_config=comments
  mlcm fit --model.init_args.network.help mlcm_torch.MLCM   (the network's options)
"""

MAX_LINES = 25
"""Longest error message the CLI prints."""


class HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help formatter, keeping the line breaks of the description."""


def _program() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name in ("mlcm", "lightning") else "mlcm"


# ---------------------------------------------------------------------------------------------- errors
class UsageError(SystemExit):
    """A configuration error already reported on stderr (exit code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


_NOISE = (
    re.compile(r"^Does not validate against any of the Union subtypes"),
    re.compile(r"^Subtypes: "),
    re.compile(r"^Errors:$"),
    re.compile(r"^- Expected a <class 'NoneType'>$"),
    re.compile(r"^Given value type: "),
    re.compile(r"^- Not a valid subclass of "),
    re.compile(r"^Subclass types expect one of:"),
    re.compile(r"^- a (class path|dict with|dict without)"),
    re.compile(r"^- Expected a path but .* either not accessible or invalid"),
    re.compile(r"^$"),
)
_KEY = re.compile(r'^(?:- )?Parser key "([^"]+)":\s*(.*)$')
_CLASS = re.compile(r"^(?:- )?Problem with given class_path '([^']+)':\s*(.*)$")
_GIVEN = re.compile(r"^Given value: (.*)$")
_NESTED_VALUE = re.compile(r"NestedArg\(key='[^']*', val=(.*)\)$")


def _leaves(message: str) -> list[tuple[list[tuple[str, str]], str, Optional[str]]]:
    """The reasons in a nested jsonargparse message, each with its path — ("key", name) and
    ("class", class_path) steps — and the given value when the message states one."""
    stack: list[tuple[int, tuple[str, str]]] = []
    leaves: list[tuple[list[tuple[str, str]], str, Optional[str]]] = []
    given: Optional[str] = None
    for raw in message.splitlines():
        indent = len(raw) - len(raw.lstrip())
        line = raw.strip()
        if not line:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        match = _GIVEN.match(line)
        if match:
            value = match.group(1)
            nested = _NESTED_VALUE.match(value)
            given = given or (nested.group(1).strip("'\"") if nested else value)
            continue
        if any(pattern.match(line) or pattern.match(line[2:] if line.startswith("- ") else line) for pattern in _NOISE):
            continue
        for pattern, kind in ((_KEY, "key"), (_CLASS, "class")):
            match = pattern.match(line)
            if match:
                stack.append((indent, (kind, match.group(1))))
                rest = match.group(2)
                if rest and not any(p.match(rest) for p in _NOISE):
                    leaves.append(([step for _, step in stack], rest, None))
                break
        else:
            leaves.append(([step for _, step in stack], line[2:] if line.startswith("- ") else line, None))
    return [(path, text, given) for path, text, _ in leaves]


def _dotted(path: list[tuple[str, str]]) -> str:
    """The option key of a path: keys joined by dots, ``init_args`` after each class."""
    parts: list[str] = []
    for kind, name in path:
        if kind == "key":
            parts.append(name)
        elif parts:
            parts.append("init_args")
    return ".".join(parts)


def _innermost_class(path: list[tuple[str, str]]) -> Optional[str]:
    classes = [name for kind, name in path if kind == "class"]
    return classes[-1] if classes else None


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _parameters(class_path: Optional[str]) -> list[str]:
    """Constructor parameters of a class (with those of its bases for ``**kwargs``)."""
    cls = _import(class_path) if class_path else None
    if cls is None:
        return []
    names: list[str] = []
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            signature = inspect.signature(init)
        except (TypeError, ValueError):
            break
        params = list(signature.parameters.values())[1:]
        names += [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def _strip_init_args(key: str) -> str:
    return ".".join(part for part in key.split(".") if part != "init_args")


def _given_on_command_line(args: Iterable[str], key: str) -> Optional[tuple[str, Optional[str]]]:
    """The command-line option (as typed) and its value that set ``key``, if one did."""
    wanted = _strip_init_args(key)
    args = list(args)
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        name, sep, value = arg[2:].partition("=")
        if _strip_init_args(name) == wanted:
            if not sep:
                value = args[i + 1] if i + 1 < len(args) else None
            return "--" + name, value
    return None


def _short(value: Optional[str]) -> Optional[str]:
    """A value worth repeating in a message (not a dump of a whole section)."""
    return value if value is not None and len(value) <= 60 and not value.startswith(("{", "Namespace(")) else None


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def _wrap(prefix: str, items: list[str]) -> list[str]:
    return textwrap.wrap(prefix + ", ".join(items), width=100, subsequent_indent="    ")


def _help_hint(key: str, class_path: Optional[str], subcommand: Optional[str]) -> str:
    command = f"{_program()} {subcommand or 'fit'}"
    cls = _import(class_path) if class_path else None
    if key.endswith(".init_args"):
        key = key[: -len(".init_args")]
    if class_path and key and cls is not None and not dataclasses.is_dataclass(cls):
        return f"options and their docs: {command} --{key}.help {class_path}"
    return f"options and their docs: {command} --help"


def _describe_leaf(path: list[tuple[str, str]], text: str, given: Optional[str], args: list[str],
                   subcommand: Optional[str]) -> list[str]:
    """Short lines for one reason of a parse error."""
    class_path = _innermost_class(path)
    prefix = _dotted(path)
    unknown = re.match(r"^Option '([^']+)' is not accepted", text) or re.match(r"^Key '([^']+)' is not expected", text)
    if unknown:
        name = unknown.group(1)
        key = f"{prefix}.{name}" if prefix else name
        typed = _given_on_command_line(args, key)
        option, value = typed if typed else (f"{key} in the config", _short(given))
        allowed = _parameters(class_path)
        owner = class_path or "this section"
        lines = [f"error: unknown option {option}" + (f" (value {value})" if value is not None else "") + ": "
                 f"{owner} has no parameter {name!r}{_suggest(name, allowed)}"]
        if allowed:
            lines += _wrap(f"  parameters of {owner}: ", allowed)
        return lines + ["  " + _help_hint(prefix, class_path, subcommand)]
    if prefix.endswith(".init_args"):
        prefix = prefix[: -len(".init_args")]
    typed = _given_on_command_line(args, prefix) if prefix else None
    option = typed[0] if typed else (f"--{prefix}" if prefix else "the configuration")
    literal = re.match(r"^Expected a (?:typing\.)?Literal\[(.*)\]\. Got value: (.*)$", text)
    if literal:
        choices = [c.strip().strip("'\"") for c in literal.group(1).split(",")]
        value = literal.group(2)
        return [f"error: invalid value for {option}: {value!r}{_suggest(value, choices)}",
                *_wrap("  allowed: ", choices)]
    expected = re.match(r"^Expected a (.*?)(?:\. Got value: (.*))?$", text)
    if expected:
        kind = re.sub(r"<class '([^']+)'>", r"\1", expected.group(1))
        value = expected.group(2) or (typed[1] if typed else None) or _short(given)
        shown = f": {value!r}" if value is not None else ""
        return [f"error: invalid value for {option}{shown}; expected {kind}"]
    missing = re.match(r"^module '([^']+)' has no attribute '([^']+)'", text)
    if missing:
        module, name = missing.groups()
        try:
            names = [n for n in dir(importlib.import_module(module)) if not n.startswith("_")]
        except ImportError:
            names = []
        return [f"error: {option}: {module} has no class {name!r}{_suggest(name, names)}"]
    return [f"error: {option}: {text}" if prefix else f"error: {text}"]


def short_parse_error(message: str, args: list[str], parser: Optional[LightningArgumentParser] = None,
                      subcommand: Optional[str] = None) -> str:
    """A short message for a jsonargparse parse error."""
    text = message.strip()
    unrecognized = re.match(r"^unrecognized arguments: (.*)$", text)
    if unrecognized:
        options = [o for o in (parser._option_string_actions if parser is not None else {}) if o.startswith("--")]
        lines = []
        for arg in unrecognized.group(1).split():
            if arg.startswith("--"):
                lines.append(f"error: unknown option {arg}{_suggest(arg.partition('=')[0], options)}")
            else:
                lines.append(f"error: unexpected argument {arg!r}")
        return _clip(lines + [f"  options and their docs: {_program()} {subcommand or 'fit'} --help"])
    if 'Invalid option "comments" for --print_config' in text:
        return ("error: --print_config=comments needs ruamel.yaml, which is not installed\n"
                "  install it with: pip install 'jsonargparse[ruamel]'  (or reinstall mlcm_torch)")
    choice = re.match(r"^argument (\w+): invalid choice: '([^']*)' \(choose from (.*)\)$", text)
    if choice:
        name, value, choices = choice.groups()
        options = [c.strip().strip("'") for c in choices.split(",")]
        return f"error: invalid {name} {value!r}{_suggest(value, options)}\n  allowed: {', '.join(options)}"
    lines: list[str] = []
    for path, leaf, given in _leaves(text):
        for line in _describe_leaf(path, leaf, given, args, subcommand):
            if line not in lines:
                lines.append(line)
    if not lines:
        lines = [f"error: {line}" if i == 0 else line for i, line in enumerate(text.splitlines())]
    return _clip(lines)


def _clip(lines: list[str]) -> str:
    if len(lines) > MAX_LINES:
        lines = lines[: MAX_LINES - 1] + [f"  ... ({len(lines) - MAX_LINES + 1} more lines)"]
    return "\n".join(lines)


def _innermost(error: BaseException) -> BaseException:
    """The first exception of a chain (what the constructor raised)."""
    seen = {id(error)}
    while True:
        nxt = error.__cause__ or error.__context__
        if nxt is None or id(nxt) in seen:
            return error
        seen.add(id(nxt))
        error = nxt


def _classes_being_built(error: BaseException) -> list[type]:
    """The classes under construction when ``error`` was raised, outermost first: those jsonargparse
    (or Lightning's instantiator) was instantiating (``class_type``) and dataclasses whose
    ``__init__`` was running."""
    found: list[type] = []
    for frame, _ in traceback.walk_tb(error.__traceback__):
        candidate = frame.f_locals.get("class_type")
        this = frame.f_locals.get("self")
        if frame.f_code.co_name in ("__init__", "__post_init__") and dataclasses.is_dataclass(this):
            candidate = type(this)
        if isinstance(candidate, type) and candidate not in found:
            found.append(candidate)
    return found


def _config_keys_of(config: Any, cls: type, prefix: str = "") -> list[str]:
    """Keys of the config entries whose ``class_path`` names ``cls``."""
    keys: list[str] = []
    if isinstance(config, Namespace):
        config = config.clone().as_dict()
    if isinstance(config, dict):
        if config.get("class_path") and _import(config["class_path"]) is cls:
            keys.append(prefix)
        elif dataclasses.is_dataclass(cls) and prefix and config and "class_path" not in config and set(config) <= {
                field.name for field in dataclasses.fields(cls)}:
            keys.append(prefix)
        for name, value in config.items():
            keys += _config_keys_of(value, cls, f"{prefix}.{name}" if prefix else name)
    elif isinstance(config, (list, tuple)):
        for index, value in enumerate(config):
            keys += _config_keys_of(value, cls, f"{prefix}[{index}]")
    return keys


def short_instantiation_error(error: BaseException, config: Any, args: list[str],
                              subcommand: Optional[str]) -> str:
    """A short message for an error raised while the classes of the config were instantiated."""
    origin = _innermost(error)
    reason = str(origin).strip() or type(origin).__name__
    section = config.get(subcommand, config) if subcommand and isinstance(config, Namespace) else config
    candidates = _classes_being_built(origin) or _classes_being_built(error)
    cls, keys = (candidates[-1] if candidates else None), []
    for candidate in reversed(candidates):  # the innermost class that the configuration names
        keys = _config_keys_of(section, candidate)
        if keys:
            cls = candidate
            break
    lines: list[str] = []
    trainer = any(frame.f_code.co_name == "_instantiate_trainer" for frame, _ in traceback.walk_tb(error.__traceback__))
    if trainer and cls is None:
        lines += [f"error: invalid trainer configuration (--trainer.*): {reason.splitlines()[0]}",
                  *("  " + line for line in reason.splitlines()[1:]),
                  f"  options and their docs: {_program()} {subcommand or 'fit'} --help"]
    elif cls is not None:
        name = f"{cls.__module__}.{cls.__qualname__}"
        for public in ("mlcm_torch", "mlcm_torch.training", "mlcm_torch.data"):
            if getattr(importlib.import_module(public), cls.__name__, None) is cls:
                name = f"{public}.{cls.__name__}"
                break
        where = f" (--{keys[0]})" if len(keys) == 1 else (f" (one of --{', --'.join(keys)})" if keys else "")
        lines.append(f"error: invalid configuration of {name}{where}:")
        option = re.match(r"^(\w+)=", reason)
        if option and len(keys) == 1:
            typed = _given_on_command_line(args, f"{keys[0]}.{option.group(1)}")
            if typed:
                lines.append(f"  set by {typed[0]}={typed[1]}")
        lines += ["  " + line for line in reason.splitlines()]
        if len(keys) == 1:
            lines.append("  " + _help_hint(keys[0], name, subcommand))
    else:
        lines.append(f"error: {reason}")
    return _clip(lines)


def _report(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------- noise
_QUIET = [
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning's _pytree on recent torch
    r"Using ModelCheckpoint with manual optimization and every_n_train_steps",  # the state after the step is wanted
]


class _NoTips(logging.Filter):
    """Drops Lightning's advertisements and its note that a model summary callback is configured."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.startswith("💡 Tip:") or message.startswith("Trainer already configured with model summary"))


def quiet_lightning() -> None:
    """Silence Lightning's deprecation warning of its pytree helper on recent torch, its warning
    that manual-optimization checkpoints hold the state after the step (that is the state a resume
    needs), and its "💡 Tip" advertisements."""
    for message in _QUIET:
        warnings.filterwarnings("ignore", message=message)
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoTips) for f in logger.filters):
        logger.addFilter(_NoTips())


# ---------------------------------------------------------------------------------------------- the CLI
class MLCMCLI(LightningCLI):
    """LightningCLI with the package's default model and data, short error messages and no
    empty log folder after a run that failed before its first batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        args_ = kwargs.get("args")
        self._args = [str(a) for a in (sys.argv[1:] if args_ is None else args_)] if not isinstance(args_, dict) else []
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults(
            {
                "model": {"class_path": "mlcm_torch.training.MLCMClassifier"},
                "data": {"class_path": "mlcm_torch.data.MNISTDataModule"},
            }
        )

    def _subcommand_name(self) -> Optional[str]:
        for arg in self._args:
            if arg in self.subcommands():
                return arg
        return None

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            if os.environ.get("MLCM_TRACEBACK"):
                raise
            subcommand = self._subcommand_name()
            target = self._subcommand_parsers.get(subcommand, parser) if subcommand and hasattr(
                self, "_subcommand_parsers") else parser
            message = short_parse_error(str(error), self._args, target, subcommand)
            _report(message)
            raise UsageError(message) from None

    def _parse_ckpt_path(self) -> None:
        try:
            super()._parse_ckpt_path()
        except ArgumentError as error:
            message = ("error: the hyperparameters stored in the checkpoint do not fit this configuration:\n"
                       + short_parse_error(str(error), self._args, None, self._subcommand_name()))
            _report(message)
            raise UsageError(message) from None

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, MisconfigurationException) as error:
            if os.environ.get("MLCM_TRACEBACK"):
                raise
            message = short_instantiation_error(error, self.config, self._args, self.subcommand)
            _report(message)
            raise UsageError(message) from None

    def _run_subcommand(self, subcommand: str) -> None:
        log_dir = self._log_dir()
        created = [] if log_dir is None else [p for p in (log_dir, *log_dir.resolve().parents) if not p.exists()]
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            if created and not self._ran_a_batch() and _remove_if_only_logs(created[0]):
                for parent in created[1:]:  # the <save_dir>/<name> folders made for it, if now empty
                    try:
                        parent.rmdir()
                    except OSError:
                        break
            raise

    def _log_dir(self) -> Optional[Path]:
        try:
            logger = self.trainer.logger
            return Path(logger.log_dir) if logger is not None and getattr(logger, "log_dir", None) else None
        except Exception:  # a logger without a local folder
            return None

    def _ran_a_batch(self) -> bool:
        trainer = self.trainer
        loops = [trainer.fit_loop.epoch_loop, trainer.validate_loop, trainer.test_loop, trainer.predict_loop]
        return any(getattr(loop, "batch_progress", None) is not None and loop.batch_progress.total.completed
                   for loop in loops)


def _remove_if_only_logs(folder: Path) -> bool:
    """Remove a run folder that holds nothing but what a logger and the config callback write at
    startup (event files, hparams.yaml, config.yaml): no checkpoint, no prediction. Returns whether
    the folder is gone."""
    if not folder.exists():
        return True
    keep = [p for p in folder.rglob("*") if p.is_file() and not (
        p.name.startswith("events.out.tfevents") or p.name in ("hparams.yaml", "config.yaml", "metrics.csv"))]
    if keep:
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """Build (and with ``run``, execute the subcommand of) the CLI on ``args`` (default:
    ``sys.argv[1:]``). With ``run=False`` there is no subcommand: the model, data and
    trainer are instantiated and returned for programmatic use.

    A bad option or value prints a short message to stderr and raises ``SystemExit(2)``
    (:class:`UsageError`, with the message); errors of the run itself propagate."""
    quiet_lightning()
    return MLCMCLI(
        ClassifierModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": _program(), "description": DESCRIPTION, "exit_on_error": False, "allow_abbrev": False, "formatter_class": HelpFormatter},
    )


RUN_ERRORS = (ValueError, FileNotFoundError, FloatingPointError, MisconfigurationException)
"""Errors of a run that ``main`` reports in one message (set ``MLCM_TRACEBACK=1`` for the traceback)."""


def main() -> None:
    """Console entry point of ``mlcm`` and ``lightning``: configuration errors exit with code 2
    and a short message, errors of the run (missing data, a width mismatch, non-finite couplings)
    with code 1 and their message; ``MLCM_TRACEBACK=1`` shows the traceback."""
    try:
        cli()
    except RUN_ERRORS as error:
        if os.environ.get("MLCM_TRACEBACK"):
            raise
        _report(f"error: {type(error).__name__}: {error}\n(set MLCM_TRACEBACK=1 to see the traceback)")
        raise SystemExit(1) from None
