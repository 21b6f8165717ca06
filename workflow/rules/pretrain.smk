# Token stores -> masked-LM pretraining (genomics-lm pretrain; options under config["pretrain"]).
#
# One run per genome x attention type: RESULTS/pretrain/{genome}/{attention}/ holds checkpoints/, csv/ (metrics and the
# resolved config.yaml), tb/ (when tensorboard is installed) and pretrained.pt, the model-only export written when
# the run completes (the rule's output). The command always passes --resume: a job killed by a time limit,
# preemption or a crash continues from checkpoints/last.ckpt (or SLURM's hpc_ckpt_N.ckpt) when it runs again.
# The model's k/stride are taken from config["tokenize"], so the model always matches its token store.
#
# config["pretrain"] keys (all optional):
#   model_config  LightningCLI YAML                       (default configs/pretrain/tiny.yaml)
#   attention     list of bigbird|longformer|dense        (default [bigbird]; used by all_targets)
#   max_steps     optimizer steps                         (default: the YAML's)
#   accelerator   cpu|gpu|auto                            (default: the YAML's)
#   devices       devices per node = DDP ranks per node   (default 1)
#   nodes         nodes                                   (default 1)
#   gpus          GPUs requested per node from SLURM      (default 0)
#   launcher      "" (Lightning starts the ranks) or "srun" (SLURM: srun starts devices x nodes tasks, one per
#                 rank/GPU; Lightning's SLURMEnvironment reads the ranks)  (default "")
#   cpus          threads / DataLoader workers            (default 2)
#   mem_mb        memory                                  (default 8000)
#   runtime       minutes                                 (default 120)
#   extra         further CLI overrides, e.g. "--data.batch_size 16 --trainer.precision bf16-mixed"

PRETRAIN = config.get("pretrain", {})


DEVICES, NODES, CPUS = int(PRETRAIN.get("devices", 1)), int(PRETRAIN.get("nodes", 1)), int(PRETRAIN.get("cpus", 2))
# srun launch only for several ranks: a single rank runs under the jobstep plugin's own `srun -n1`
SRUN = PRETRAIN.get("launcher", "") == "srun" and DEVICES * NODES > 1


def _pretrain_resources():
    res = {"mem_mb": int(PRETRAIN.get("mem_mb", 8000)), "runtime": int(PRETRAIN.get("runtime", 120)),
           "cpus_per_task": CPUS}  # per task: with srun, one task per rank
    if int(PRETRAIN.get("gpus", 0)) > 0:
        res["gpu"] = int(PRETRAIN["gpus"])
    if NODES > 1:
        res["nodes"] = NODES
    if SRUN:
        res["mpi"] = "srun"  # the slurm executor then leaves the srun launch to the command
        res["tasks_per_node"] = DEVICES
    return res


def _launcher():
    """srun with the task layout spelled out: inside the job the slurm jobstep plugin strips the allocation's
    SLURM_* variables, so a bare srun would start one task (and Lightning would train with world size 1)."""
    if not SRUN:
        return ""
    return f"srun --nodes={NODES} --ntasks-per-node={DEVICES} --cpus-per-task={CPUS} --kill-on-bad-exit=1"


def _pretrain_overrides():
    tok = config["tokenize"]
    out = [f"--model.arch.k {tok['k']}", f"--model.arch.stride {tok.get('stride') or tok['k']}",
           f"--trainer.devices {DEVICES}", f"--trainer.num_nodes {NODES}", f"--data.num_workers {max(0, CPUS - 1)}", "--trainer.enable_progress_bar false"]
    if PRETRAIN.get("max_steps"):
        out.append(f"--trainer.max_steps {int(PRETRAIN['max_steps'])}")
    if PRETRAIN.get("accelerator"):
        out.append(f"--trainer.accelerator {PRETRAIN['accelerator']}")
    if PRETRAIN.get("extra"):
        out.append(str(PRETRAIN["extra"]))
    return " ".join(out)


rule pretrain:
    input:
        train=lambda wc: token_store(wc.genome, "train"),
        val=lambda wc: token_store(wc.genome, "val"),
        model_config=PRETRAIN.get("model_config", "configs/pretrain/tiny.yaml"),
    output:
        model=pretrained_model("{genome}", "{attention}"),
    log:
        f"{RESULTS}/logs/pretrain/{{genome}}.{{attention}}.log",
    wildcard_constraints:
        attention="bigbird|longformer|dense",
    params:
        run_dir=lambda wc, output: os.path.dirname(output.model),
        launcher=_launcher(),
        overrides=_pretrain_overrides(),
    threads: CPUS
    resources:
        **_pretrain_resources(),
    shell:
        "{params.launcher} genomics-lm pretrain fit --config {input.model_config}"
        " --data.train_path {input.train} --data.val_path {input.val} --model.arch.attention {wildcards.attention}"
        " --trainer.default_root_dir {params.run_dir} {params.overrides} --resume > {log} 2>&1"
