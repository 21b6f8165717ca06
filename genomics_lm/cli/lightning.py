"""The LightningCLI machinery shared by ``genomics-lm pretrain`` and ``genomics-lm finetune``.

A command is a :class:`TrainCommand` (its name, description, LightningModule, LightningDataModule, the monitored
metric and the model-only export written after fit); :func:`run` gives it:

* ``fit`` / ``validate`` subcommands (a subcommand is required), ``--resume`` (fit only) and ``--ckpt_path``;
* a fixed run folder (``trainer.default_root_dir``): ``checkpoints/best.ckpt`` + ``last.ckpt``, one
  ``csv/metrics.csv`` per run (appended on resume), ``csv/config.yaml``, ``tb/`` and the export;
* the tokenizer check of the data against the model before any output, one-line errors for config mistakes
  (file, key, closest valid key), a curated ``--help`` (``--help-all`` for every Lightning option) and no
  Lightning start-up chatter;
* SIGTERM (and SIGUSR1 outside SLURM) saving ``last.ckpt``; SLURM requeue through Lightning's SLURMEnvironment.
"""

from __future__ import annotations

import difflib
import logging
import os
import signal
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genomics_lm.errors import UserError

SUBCOMMANDS = ("fit", "validate")


@dataclass(frozen=True)
class TrainCommand:
    """What distinguishes one training command from another."""

    prog: str  # "genomics-lm pretrain"
    description: str
    module: str  # "genomics_lm.pretrain:MLMPretrainModule" (imported only when the command runs)
    datamodule: str  # "genomics_lm.data:MLMDataModule"
    export_name: str  # file written into the run folder after fit, e.g. "pretrained.pt"
    export: str  # "genomics_lm.checkpoint:export_pretrained": (best checkpoint, out path) -> path
    monitor: str = "val/loss"  # the metric that picks best.ckpt
    mode: str = "min"
    note: str = ""  # appended to the line printed after fit
    # (source, target, compute function or None): e.g. the label names of the task store become the model's
    links: tuple[tuple[str, str, str | None], ...] = ()


def _load(spec: str) -> Any:
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _quiet_lightning() -> None:
    """Keep Lightning's warnings and errors; drop its start-up chatter (GPU/TPU/HPU lines, tips, srun hint)."""
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                 "lightning_fabric.utilities.rank_zero", "pytorch_lightning.accelerators.cuda",
                 "lightning_fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*LightningCLI's args parameter.*", ".*`srun` command is available.*",
                    ".*does not have many workers.*", ".*Checkpoint directory .* exists and is not empty.*",
                    ".*is smaller than the logging interval.*", ".*The number of training batches.*",
                    ".*isinstance.treespec, LeafSpec.*"):
        warnings.filterwarnings("ignore", message=pattern)


def _flat_items(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every key of a nested mapping (inner mappings included)."""
    items = {}
    for key, value in (node.items() if isinstance(node, dict) else []):
        items[prefix + str(key)] = value
        items.update(_flat_items(value, f"{prefix}{key}."))
    return items


def _config_files(argv: list[str]) -> list[str]:
    files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    return files + [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]


def explain_parse_error(message: str, argv: list[str], known: set[str]) -> str:
    """One line for a jsonargparse error: the config file or option, the key, and the closest valid key."""
    import re

    import yaml

    def closest(key: str, dashes: str = "") -> str:
        match = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        return f"; did you mean {dashes}{match[0]}?" if match else ""

    def source(key: str, value: str | None = None) -> str:
        """``"FILE: "`` when the last config file setting ``key`` (to ``value``, if known) is its source."""
        if value is not None and any(a.split("=")[0] == f"--{key}" for a in argv):
            return ""  # given on the command line
        for path in reversed(_config_files(argv)):
            try:
                items = _flat_items(yaml.safe_load(Path(path).read_text()))
            except (OSError, yaml.YAMLError):
                continue
            if key in items:
                return f"{path}: " if value is None or str(items[key]) == value else ""
        return ""

    if m := re.search(r"does not accept option '([^']+)'", message):
        key = m.group(1)
        return f"{source(key)}unknown key {key!r}{closest(key)}"
    if m := re.search(r"unrecognized arguments: (--\S+)", message):
        key = m.group(1).lstrip("-").split("=")[0]
        return f"unknown option --{key}{closest(key, '--')}"
    if m := re.search(r'Parser key "([^"]+)":\s*(.*)', message, re.S):
        key, rest = m.group(1), " ".join(line.strip() for line in m.group(2).splitlines() if line.strip())
        given = re.search(r"Got value: (.*)$", rest)
        return f"{source(key, given.group(1) if given else None)}{key}: {rest}"
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return "; ".join(lines[:3]) if lines else message


def _build_cli_class(cmd: TrainCommand):
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.cli import LightningCLI

    from genomics_lm.checkpoint import RUNTIME_FIELDS, read_checkpoint, read_record
    from genomics_lm.model import num_parameters
    from genomics_lm.training import LastCheckpoint, find_resume_checkpoint, run_csv_logger

    PROG = cmd.prog

    class TrainCLI(LightningCLI):
        """LightningCLI with a fixed run-folder layout, ``--resume`` and the tokenizer check before any output."""

        def parse_arguments(self, parser, args) -> None:
            try:
                super().parse_arguments(parser, args)
            except Exception as exc:  # jsonargparse's ArgumentError: explain it in one line
                if type(exc).__name__ != "ArgumentError":
                    raise
                sub = next((a for a in args if a in SUBCOMMANDS), "fit")
                subparser = parser._subcommands_action._name_parser_map[sub]
                known = set(subparser.get_defaults().keys())
                raise UserError(explain_parse_error(str(exc), list(args), known)) from None

        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            base = LightningCLI.subcommands()
            return {name: base[name] for name in SUBCOMMANDS}

        def _prepare_subcommand_parser(self, klass, subcommand: str, **kwargs):
            # private hook: the public add_arguments_to_parser is not told which subcommand it builds, and
            # --resume/--export belong to fit only (validate --help must not list them)
            self._building = subcommand
            return super()._prepare_subcommand_parser(klass, subcommand, **kwargs)

        def _parse_ckpt_path(self) -> None:
            # private hook: LightningCLI would replace the model config by the checkpoint's Lightning
            # hyper-parameters without a word. fit (resume) refuses a checkpoint of another model instead
            # (MLMPretrainModule.on_load_checkpoint); validate takes the model from the genomics_lm record
            # (_model_from_checkpoint below).
            return

        def add_arguments_to_parser(self, parser) -> None:
            for source, target, compute in cmd.links:
                parser.link_arguments(source, target, compute_fn=_load(compute) if compute else None)
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults({
                "checkpoint.monitor": cmd.monitor, "checkpoint.mode": cmd.mode, "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best", "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False, "checkpoint.enable_version_counter": False,
            })
            if getattr(self, "_building", "fit") == "fit":
                parser.add_argument("--resume", type=bool, default=False,
                                    help="continue the run in --trainer.default_root_dir from its newest checkpoint "
                                         "(checkpoints/last.ckpt or SLURM's hpc_ckpt_N.ckpt); starts a new run when "
                                         "there is none. To start from a checkpoint file of another run, give "
                                         "--ckpt_path FILE instead (not both)")
                parser.add_argument("--export", type=bool, default=True,
                                    help=f"after fit, write RUN/{cmd.export_name} (model-only export of best.ckpt)")

        def before_instantiate_classes(self) -> None:
            cfg = self.config[self.subcommand]
            root = cfg.trainer.get("default_root_dir") or os.path.join("results", PROG.split()[-1], "run")
            cfg.trainer.default_root_dir = root
            if not cfg.checkpoint.get("dirpath"):
                cfg.checkpoint.dirpath = os.path.join(root, "checkpoints")
            if self.subcommand == "fit" and cfg.get("resume") and cfg.get("ckpt_path"):
                raise UserError("give --resume (continue this run folder) or --ckpt_path FILE, not both")
            if self.subcommand == "validate":
                self._model_from_checkpoint(cfg)
            max_steps = cfg.trainer.get("max_steps")
            if max_steps is not None and (max_steps < -1 or max_steps == 0):
                raise UserError(f"trainer.max_steps must be a positive number of optimizer steps (or -1 for "
                                f"max_epochs), got {max_steps}")

        def _model_from_checkpoint(self, cfg) -> None:
            # validate: the model is the checkpoint's (no model config needed to evaluate a checkpoint;
            # runtime fields such as the backend stay overridable). LightningCLI would otherwise take the
            # Lightning hyper-parameters silently.
            path = cfg.get("ckpt_path")
            if not path:
                raise UserError("validate needs --ckpt_path FILE (a checkpoint of a run of this command)")
            config, _ = read_record(read_checkpoint(path), path)
            for key, value in config.to_dict().items():
                if key == "tokenizer":
                    cfg["model.arch.tokenizer.k"], cfg["model.arch.tokenizer.stride"] = value["k"], value["stride"]
                elif key not in RUNTIME_FIELDS:
                    cfg[f"model.arch.{key}"] = value

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list):
            # private hook: the loggers need the run folder and the resume step, known only here
            config = dict(config)
            root = config["default_root_dir"]
            sub = self.config.get("subcommand")
            resume_step = self._resume_step() if sub == "fit" else None
            if config.get("logger") in (None, True):
                loggers = [run_csv_logger(root, resume_step)]
                if _tensorboard_available():
                    from pytorch_lightning.loggers import TensorBoardLogger

                    loggers.append(TensorBoardLogger(save_dir=root, name="tb", default_hp_metric=False))
                config["logger"] = loggers
            extra = [LastCheckpoint(prog=PROG)] if sub == "fit" else []
            return super()._instantiate_trainer(config, list(callbacks) + extra)

        def _resume_step(self) -> int | None:
            cfg = self.config["fit"]
            found = cfg.get("ckpt_path")
            if cfg.get("resume") and not found:
                found = find_resume_checkpoint(cfg.trainer.default_root_dir)
                if found:
                    print(f"{PROG}: resuming from {found}", file=sys.stderr)
                else:
                    print(f"{PROG}: --resume: no checkpoint in {cfg.trainer.default_root_dir}; starting a new run",
                          file=sys.stderr)
            self._resume_path = found
            if not found:
                return None
            return int(read_checkpoint(found).get("global_step", 0))

        def _setup_data(self) -> None:
            # bad stores and a tokenizer other than the model's fail here, before the loggers create run folders
            stage = "fit" if self.subcommand == "fit" else "validate"
            self.datamodule.setup(stage)
            self.datamodule.check_tokenizer(self.model.arch.tokenizer, "the model config (model.arch.tokenizer)")

        def before_validate(self) -> None:
            self._setup_data()
            self.config_init["validate"]["weights_only"] = True

        def before_fit(self) -> None:
            self._setup_data()
            # Lightning's default (None) already means weights_only=True on torch >= 2.6; say it explicitly so
            # TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot turn a resume into an unpickling
            self.config_init["fit"]["weights_only"] = True
            self.config_init["fit"]["ckpt_path"] = getattr(self, "_resume_path", None)
            arch = self.model.arch
            n = num_parameters(self.model)
            print(f"{PROG}: fit {arch.attention} ({arch.tokenizer.describe()}, {n / 1e6:.2f} M parameters) on "
                  f"{self.trainer.accelerator.__class__.__name__.replace('Accelerator', '').lower()} x "
                  f"{self.trainer.world_size}; run folder {self.trainer.default_root_dir}", file=sys.stderr)

        def after_fit(self) -> None:
            trainer = self.trainer
            if trainer.interrupted:
                return
            cb = trainer.checkpoint_callback
            best = getattr(cb, "best_model_path", "") or getattr(cb, "last_model_path", "")
            if trainer.is_global_zero and best and self.config_init["fit"].get("export", True):
                out = _load(cmd.export)(best, os.path.join(trainer.default_root_dir, cmd.export_name))
                metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
                shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
                print(f"{PROG}: step {trainer.global_step}; {shown}; best {best}; exported {out}{cmd.note}",
                      file=sys.stderr)

    return TrainCLI


def _tensorboard_available() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX"))


# the Trainer / ModelCheckpoint / fit options shown by --help (--help-all shows all of them)
SHORT_HELP_KEEP = {
    "trainer": {"accelerator", "devices", "num_nodes", "strategy", "precision", "max_steps", "max_epochs",
                "default_root_dir", "val_check_interval", "limit_val_batches", "log_every_n_steps",
                "gradient_clip_val", "accumulate_grad_batches", "enable_progress_bar"},
    "checkpoint": {"every_n_train_steps"},
}
SHORT_HELP_DROP = {"print_config", "weights_only", "seed_everything"}


def short_help(full: str, prog: str, description: str, sub: str) -> str:
    """``--help`` without the long tail of Lightning options: the project's options in full, the Trainer and
    checkpoint options users set, a one-line usage."""
    import re

    out = [f"usage: {prog} {sub} --config CONFIG.yaml [--section.option VALUE ...]", "", description, ""]
    blocks = re.split(r"\n\s*\n", full.split("\n\n", 1)[1])  # drop the very long usage block
    for block in blocks:
        lines = block.splitlines()
        entries, current = [], []
        for line in lines:
            if re.match(r"^  -", line) and current:
                entries.append(current)
                current = []
            current.append(line)
        entries.append(current)
        kept = []
        for entry in entries:
            m = re.match(r"^\s+(?:-\w+, )?--([\w.]+)", entry[0])
            if not m:
                kept.append(entry)  # a section title or plain text
                continue
            name = m.group(1)
            section, _, leaf = name.partition(".")
            if name.endswith(".help") or name in SHORT_HELP_DROP or leaf == "" and section in SHORT_HELP_KEEP:
                continue
            if section in SHORT_HELP_KEEP and leaf not in SHORT_HELP_KEEP[section]:
                continue
            kept.append(entry)
        if any(re.match(r"^\s+-", e[0]) for e in kept):
            out += [line for e in kept for line in e] + [""]
    out.append(f"Only the common Trainer and checkpoint options are listed; '{prog} {sub} --help-all' lists all.")
    return "\n".join(out)


def run(cmd: TrainCommand, argv: list[str]) -> int:
    """``PROG fit|validate --config CONFIG.yaml [--resume] [--section.option value ...]``."""
    PROG, DESCRIPTION = cmd.prog, cmd.description
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {PROG} {{fit,validate}} --config CONFIG.yaml [options]\n\n{DESCRIPTION}\n\n"
              f"Run '{PROG} fit --help' or '{PROG} validate --help' for the options.")
        return 0
    if argv[0] not in SUBCOMMANDS:
        raise UserError(f"choose a subcommand first: '{PROG} fit ...' (train) or '{PROG} validate ...' "
                        f"(evaluate a checkpoint); got {argv[0]!r}")
    sub = argv[0]
    if any(a in ("-h", "--help", "--help-all") for a in argv[1:]):
        # the help shows the defaults of the --config files given (as jsonargparse's default_config_files);
        # --help is the curated list, --help-all jsonargparse's own
        import contextlib
        import io

        files = _config_files(argv)
        for path in files:
            if not Path(path).is_file():
                raise UserError(f"{path}: no such config file")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
            _run_cli(cmd, [sub, "--help"], {sub: {"default_config_files": files}})
        print(buf.getvalue() if "--help-all" in argv else short_help(buf.getvalue(), PROG, DESCRIPTION, sub))
        return 0
    # '--resume' alone means '--resume true' (jsonargparse wants a value for bools)
    return _run_cli(cmd, [a if a != "--resume" else "--resume=true" for a in argv])


def _run_cli(cmd: TrainCommand, argv: list[str], sub_kwargs: dict | None = None) -> int:
    _quiet_lightning()
    from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException

    TrainCLI = _build_cli_class(cmd)
    try:
        TrainCLI(
            _load(cmd.module), _load(cmd.datamodule), subclass_mode_model=False, subclass_mode_data=False, args=argv,
            save_config_kwargs={"overwrite": True, "config_filename": "config.yaml"},
            parser_kwargs={"prog": cmd.prog, "default_env": False, "description": cmd.description, "exit_on_error": False,
                           **(sub_kwargs or {})},
            auto_configure_optimizers=False, seed_everything_default=0, run=True,
            trainer_defaults={"enable_model_summary": False},
        )
    except SIGTERMException:
        return 128 + int(signal.SIGTERM)
    except MisconfigurationException as exc:
        raise UserError(str(exc).strip().splitlines()[0]) from None
    return 0
