# Shared helpers: validate the config (filling in the schema's defaults), the data folder, every path and option
# string the rules use. The rule files hold rules only; functions live here.
import os
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

if not config:
    raise WorkflowError("no configuration: pass --configfile (e.g. --configfile configs/demo.yaml)")
# the one home of the defaults: workflow/schemas/config.schema.yaml (`default:` on every optional key)
validate(config, schema="../schemas/config.schema.yaml", set_default=True)

SPLITS = ["train", "val", "test"]
RESULTS = config["results"]
TOKENIZE = config["tokenize"]
PRETRAIN = config.get("pretrain")  # None: tokenize only
ATTENTIONS = PRETRAIN["attention"] if PRETRAIN else []


# ---------------------------------------------------------------------------------------------------- inputs


def data_dir():
    """The input data folder: $GENOMICS_LM_DATA if set, else config['data_dir'] (relative to the working directory),
    as an absolute path with symbolic links resolved."""
    return os.path.realpath(os.environ.get("GENOMICS_LM_DATA") or config["data_dir"])


def canonical_path(path):
    """One spelling per file, however it was reached (relative or absolute data folder, a symlinked folder): the
    absolute path of the resolved folder plus the file's own name. Snakemake compares input paths as strings, so
    two spellings of one FASTA would plan a rerun ("set of input files has changed"). The file name itself is kept
    (a symlinked FASTA, e.g. a git-annex file, keeps its name and suffix)."""
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def genome_fasta(wildcards):
    """The FASTA of a genome: config genomes[name].fasta, relative to the data folder or absolute."""
    return canonical_path(os.path.join(data_dir(), config["genomes"][wildcards.genome]["fasta"]))


# ---------------------------------------------------------------------------------------------------- outputs


def token_dir(genome):
    return f"{RESULTS}/tokens/{genome}"


def token_store(genome, split):
    return f"{token_dir(genome)}/{split}.h5"


def pretrain_run(genome, attention):
    """A pretraining run folder (trainer.default_root_dir): pretrained.pt, checkpoints/, csv/metrics.csv."""
    return f"{RESULTS}/pretrain/{genome}/{attention}"


def pretrained_model(genome, attention):
    return f"{pretrain_run(genome, attention)}/pretrained.pt"


def pretrain_summary(genome):
    return f"{RESULTS}/pretrain/{genome}/summary.tsv"


def log_file(stage, name):
    return f"{RESULTS}/logs/{stage}/{name}.log"


def all_targets():
    """Token stores of every genome; with a `pretrain` section, a pretrained model per genome x attention and a
    summary table per genome."""
    targets = [token_store(g, s) for g in config["genomes"] for s in SPLITS]
    targets += [pretrained_model(g, a) for g in config["genomes"] for a in ATTENTIONS]
    if PRETRAIN:
        targets += [pretrain_summary(g) for g in config["genomes"]]
    return targets


# ---------------------------------------------------------------------------------------------------- tokenize


def tokenizer_k_stride():
    """(k, stride) of the token stores, which the pretrained models must match."""
    return TOKENIZE["k"], TOKENIZE["stride"] or TOKENIZE["k"]


def tokenize_options():
    """config['tokenize'] as `genomics-lm tokenize` options; a null value leaves the command's own default."""
    out = []
    for key, value in TOKENIZE.items():
        flag = f"--{key.replace('_', '-')}"
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            out.append(f"{flag} {shlex.quote(','.join(value))}")
        else:
            out.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(out)


# ---------------------------------------------------------------------------------------------------- pretrain
# (used only with a `pretrain` section: the Snakefile includes pretrain.smk and summary.smk only then)
# The rank layout: `devices` ranks per node on `nodes` nodes. srun launches only for several ranks: a single
# rank runs under the slurm jobstep plugin's own `srun -n1`.


def _srun():
    return PRETRAIN["launcher"] == "srun" and PRETRAIN["devices"] * PRETRAIN["nodes"] > 1


def pretrain_resources():
    """Resources of one pretraining job (per task: with srun, one task per rank)."""
    res = {"mem_mb": PRETRAIN["mem_mb"], "runtime": PRETRAIN["runtime"], "cpus_per_task": PRETRAIN["cpus"]}
    if PRETRAIN["gpus"] > 0:
        res["gpu"] = PRETRAIN["gpus"]
    if PRETRAIN["nodes"] > 1:
        res["nodes"] = PRETRAIN["nodes"]
    if _srun():
        res["mpi"] = "srun"  # the slurm executor then leaves the srun launch to the command
        res["tasks_per_node"] = PRETRAIN["devices"]
    return res


def pretrain_launcher():
    """srun with the task layout spelled out: inside the job the slurm jobstep plugin strips the allocation's
    SLURM_* variables, so a bare srun would start one task (and Lightning would train with world size 1)."""
    if not _srun():
        return ""
    return (f"srun --nodes={PRETRAIN['nodes']} --ntasks-per-node={PRETRAIN['devices']}"
            f" --cpus-per-task={PRETRAIN['cpus']} --kill-on-bad-exit=1")


def pretrain_options():
    """`genomics-lm pretrain fit` options from config['pretrain']; the model's tokenizer is the token stores'."""
    k, stride = tokenizer_k_stride()
    out = [f"--model.arch.tokenizer.k {k}", f"--model.arch.tokenizer.stride {stride}",
           f"--trainer.devices {PRETRAIN['devices']}", f"--trainer.num_nodes {PRETRAIN['nodes']}",
           f"--data.num_workers {PRETRAIN['cpus'] - 1}", "--trainer.enable_progress_bar false"]
    if PRETRAIN["max_steps"] is not None:
        out.append(f"--trainer.max_steps {PRETRAIN['max_steps']}")
    if PRETRAIN["accelerator"] is not None:
        out.append(f"--trainer.accelerator {PRETRAIN['accelerator']}")
    if PRETRAIN["extra"]:
        out.append(PRETRAIN["extra"])
    return " ".join(out)


def summary_runs(wildcards):
    """`genomics-lm summarize` --run options: one per attention type of a genome."""
    return " ".join(f"--run {a}={pretrain_run(wildcards.genome, a)}" for a in ATTENTIONS)
