# Shared helpers: validate the config (filling in the schema's defaults), the data folder, every path and option
# string the rules use. The rule files hold rules only; functions live here.
import csv
import hashlib
import os
import re
import shlex

import yaml

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
TASKS = config["tasks"]
FINETUNE = config.get("finetune")  # None: no fine-tuning, evaluation or report
EVALUATE = config["evaluate"]
BENCH = config["bench"]
REPORT = config.get("report")
SCORE = config.get("score")
LONG_CONTEXT = config["long_context"]  # {}: no long-context experiment
# the software of every rule, for --software-deployment-method conda (the same environment as `pip install -e .`)
CONDA_ENV = "../../environment.yml"


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


# Inputs named by their `path` entry of the manifest (config `manifest`, data/MANIFEST.tsv) are checked against its
# sha256 twice: here at parse time for the files present in the data folder (a wrong checksum stops the run before
# any job starts), and by the rule fetch_input (inputs.smk), which copies each from the data folder (or downloads it
# from its URL with `download: true`) into RESULTS/inputs/PATH. Every stage reads that copy. Paths not in the
# manifest (a user's own files) are read from the data folder as they are, and must exist.


def read_manifest(path):
    """The manifest as {path: {bytes, sha256, url, licence, what}} ('#' lines are comments)."""
    if not os.path.isfile(path):
        raise WorkflowError(f"config manifest: {path}: no such file")
    with open(path, newline="") as fh:
        rows = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        missing = {"path", "sha256"} - set(rows.fieldnames or [])
        if missing:
            raise WorkflowError(f"{path}: no column {', '.join(sorted(missing))} in the header")
        return {row["path"]: row for row in rows if row.get("path")}


MANIFEST_PATH = config["manifest"]
URL_SCHEMES = ("http://", "https://", "ftp://", "file://")  # file:// = a local mirror
MANIFEST = read_manifest(MANIFEST_PATH)
USED_INPUTS = {}  # manifest path -> who uses it (for the parse-time check)


def input_copy(path):
    return f"{RESULTS}/inputs/{path}"


def input_file(path, what):
    """A workflow input: RESULTS/inputs/PATH for a manifest entry (checked copy), else the file in the data folder
    (relative to it, or absolute), which must exist. ``what`` names the config entry in error messages."""
    if not os.path.isabs(path) and path in MANIFEST:
        USED_INPUTS.setdefault(path, what)
        return input_copy(path)
    local = canonical_path(os.path.join(data_dir(), path))
    if not os.path.exists(local):
        raise WorkflowError(f"{what}: input {path!r} not found: {local} does not exist (data folder {data_dir()},"
                            f" $GENOMICS_LM_DATA or data_dir), and {MANIFEST_PATH} has no entry {path!r} to fetch")
    return local


def input_folder(folder, what):
    """A folder input (per-feature tables): RESULTS/inputs/FOLDER with the manifest entries under FOLDER (each a
    checked copy), else the folder in the data folder. Returns (folder, [files])."""
    prefix = os.path.join(folder.rstrip(os.sep), "")
    entries = [p for p in MANIFEST if p.startswith(prefix)] if not os.path.isabs(folder) else []
    if entries:
        return input_copy(folder.rstrip("/")), [input_file(p, what) for p in entries]
    local = canonical_path(os.path.join(data_dir(), folder.rstrip("/")))
    if not os.path.isdir(local):
        raise WorkflowError(f"{what}: input folder {folder!r} not found: {local} is not a folder, and {MANIFEST_PATH}"
                            f" has no entry under {prefix!r}")
    return local, []


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_error(path, source, actual):
    expected = MANIFEST[path]["sha256"]
    return (f"checksum mismatch: {path} ({source}): sha256 {actual}, expected {expected} ({MANIFEST_PATH});"
            " the file is not the one the manifest names (a different version, or damaged)")


def check_inputs():
    """Every manifest input the config uses: present in the data folder with the manifest's sha256, or fetched
    already, or downloadable. Runs at parse time, so a wrong or missing input stops the run before any job."""
    for path, what in USED_INPUTS.items():
        local = os.path.join(data_dir(), path)
        if os.path.isfile(local):
            actual = sha256_of(local)
            if actual != MANIFEST[path]["sha256"]:
                raise WorkflowError(f"{what}: {checksum_error(path, os.path.realpath(local), actual)}")
        elif os.path.isfile(input_copy(path)):
            continue  # fetched (and checked) by an earlier run
        elif not config["download"] or not (MANIFEST[path].get("url") or "").startswith(URL_SCHEMES):
            how = ("it has no URL in the manifest" if config["download"]
                   else "download is off (config `download: true` fetches it from its manifest URL)")
            raise WorkflowError(f"{what}: input {path!r} is missing: {local} does not exist (data folder {data_dir()},"
                                f" $GENOMICS_LM_DATA or data_dir) and {how}")


def fetch_source(wildcards):
    """The data-folder file fetch_input copies; none when it downloads."""
    local = os.path.join(data_dir(), wildcards.path)
    return canonical_path(local) if os.path.isfile(local) or not config["download"] else []


def fetch_command(wildcards, input):
    """A command writing the input's bytes to stdout: the data-folder file, or its URL (`gzip -n -9` where the
    manifest path is gzip-compressed and the URL is not: the stored copy of an uncompressed original)."""
    if input:
        return f"cat {shlex.quote(str(input[0]))}"
    url = MANIFEST[wildcards.path]["url"]
    gz = wildcards.path.endswith(".gz") and not url.endswith(".gz")
    compress = " | gzip -n -9" if gz else ""
    return f"curl -fsSL --retry 3 {shlex.quote(url)}{compress}"


def genome_input(name_or_path, what):
    """A genome: a name of config `genomes` (its FASTA), or a FASTA path."""
    if name_or_path in config["genomes"]:
        return input_file(config["genomes"][name_or_path]["fasta"], f"config genomes: {name_or_path}")
    return input_file(name_or_path, what)


def genome_fasta(wildcards):
    """The FASTA of a genome: config genomes[name].fasta, relative to the data folder or absolute."""
    return genome_input(wildcards.genome, f"config genomes: {wildcards.genome}")


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


def benchmark_file(stage, name):
    return f"{RESULTS}/benchmarks/{stage}/{name}.tsv"


def by_attempt(minutes):
    """A runtime that grows with the attempt: a job killed at its time limit gets twice as long on the retry."""
    return lambda wildcards, attempt: minutes * attempt


def option_string(section, names):
    """`--name value` options of the non-null keys ``names`` of a config section (True: a flag)."""
    out = []
    for key in names:
        value = section.get(key)
        flag = f"--{key.replace('_', '-')}"
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            out.append(f"{flag} {shlex.quote(','.join(map(str, value)))}")
        else:
            out.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(out)


def all_targets():
    """Token stores of every genome; with a `pretrain` section, a pretrained model per genome x attention and a
    summary table per genome; every task store; with a `finetune` section every evaluation, compare table and
    long-context table; the report and the scores."""
    targets = [token_store(g, s) for g in config["genomes"] for s in SPLITS]
    targets += [pretrained_model(g, a) for g in config["genomes"] for a in ATTENTIONS]
    if PRETRAIN:
        targets += [pretrain_summary(g) for g in config["genomes"]]
    targets += [task_store(t, s) for t in TASKS for s in SPLITS]
    if FINETUNE:
        targets += [metrics_file(t, a, s) for t, a, s in finetune_runs()]
        targets += [compare_table(t) for t in TASKS]
        targets += [context_table_file(name) for name in LONG_CONTEXT]
    if REPORT:
        targets.append(report_file())
    if SCORE:
        targets += score_targets()
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
    res = {"mem_mb": PRETRAIN["mem_mb"], "runtime": by_attempt(PRETRAIN["runtime"]), "cpus_per_task": PRETRAIN["cpus"]}
    if PRETRAIN["gpus"] > 0:
        # per node (sbatch --gres=gpu:N); the `gpu` resource would be sbatch --gpus=N, a total for the whole job
        res["gres"] = f"gpu:{PRETRAIN['gpus']}"
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


# ---------------------------------------------------------------------------------------------------- tasks
# One `genomics-lm make-task` per config task; k and stride are the token stores' (tokenizer_k_stride), so the
# pretrained models fit every task.

TASK_KINDS = {"pair": "pos/neg", "table": "table", "tables": "tables", "peaks": "peaks", "tss": "tss"}
GENOME_TASK_OPTIONS = ["bin_bp", "context_bp", "select_bp", "neg_per_pos", "min_distance", "max_n_frac",
                       "chrom_map", "chrom_prefix", "regulondb_mismatch", "block_bp", "gap_bp", "val_frac",
                       "test_frac", "mask_outside_bp", "tss_format"]
MAKE_TASK_OPTIONS = ["tss_format", "bin_bp", "context_bp", "select_bp", "neg_per_pos", "min_distance",
                     "max_n_frac", "regulondb_mismatch", "block_bp", "gap_bp", "val_frac", "test_frac",
                     "mask_outside_bp", "seed", "label_name"]


def names_regex(names):
    """A wildcard constraint matching exactly these names (none: matches nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def task_kind(name):
    spec = TASKS[name]
    where = f"config tasks: {name}"
    markers = {"pair": bool(spec.get("pos") or spec.get("neg")), "table": bool(spec.get("table")),
               "tables": bool(spec.get("tables")), "peaks": bool(spec.get("peaks")), "tss": bool(spec.get("tss"))}
    kinds = [k for k, present in markers.items() if present]
    if len(kinds) != 1:
        found = ", ".join(TASK_KINDS[k] for k in kinds) or "none"
        raise WorkflowError(f"{where}: give one kind of input: pos + neg (FASTA pair), table, tables, genome + peaks"
                            f" or genome + tss (found: {found})")
    kind = kinds[0]
    if kind == "pair" and not (spec.get("pos") and spec.get("neg")):
        raise WorkflowError(f"{where}: a FASTA pair needs both pos and neg")
    if kind in ("peaks", "tss") and not spec.get("genome"):
        raise WorkflowError(f"{where}: {kind} needs a genome (a name of `genomes` or a FASTA)")
    if kind not in ("peaks", "tss"):
        wrong = [k for k in ["genome"] + GENOME_TASK_OPTIONS if spec.get(k) is not None]
        if wrong:
            raise WorkflowError(f"{where}: {', '.join(wrong)} only apply to genome tasks (genome + peaks or tss)")
    if bool(spec.get("test_pos")) != bool(spec.get("test_neg")) or (kind != "pair" and spec.get("test_pos")):
        raise WorkflowError(f"{where}: test_pos and test_neg go together, with pos and neg")
    if kind != "table" and (spec.get("dev") or spec.get("test")):
        raise WorkflowError(f"{where}: dev and test go with table")
    return kind


def _task_plan(name):
    """(input files, make-task input options) of a task; every file resolved (and registered for the checksum
    check) through input_file."""
    spec = TASKS[name]
    kind = task_kind(name)
    where = f"config tasks: {name}"
    files, args = [], []

    def add(flag, path):
        f = input_file(path, where)
        files.append(f)
        args.append(f"{flag} {shlex.quote(f)}")

    if kind == "pair":
        for key in ("pos", "neg", "test_pos", "test_neg"):
            if spec.get(key):
                add(f"--{key.replace('_', '-')}", spec[key])
    elif kind == "table":
        for key in ("table", "dev", "test"):
            if spec.get(key):
                add(f"--{key}", spec[key])
    elif kind == "tables":
        pairs = []
        for feature, folder in spec["tables"].items():
            local, copies = input_folder(folder, f"{where}: tables: {feature}")
            files += copies
            pairs.append(shlex.quote(f"{feature}={local}"))
        args.append(f"--tables {' '.join(pairs)}")
    else:
        genome = genome_input(spec["genome"], f"{where}: genome")
        files.append(genome)
        args.append(f"--genome {shlex.quote(genome)}")
        if kind == "peaks":
            pairs = []
            for feature, path in spec["peaks"].items():
                f = input_file(path, f"{where}: peaks: {feature}")
                files.append(f)
                pairs.append(shlex.quote(f"{feature}={f}"))
            args.append(f"--peaks {' '.join(pairs)}")
        else:
            add("--tss", spec["tss"])
        if spec.get("chrom_map"):
            add("--chrom-map", spec["chrom_map"])
        if spec.get("chrom_prefix"):
            args.append(f"--{spec['chrom_prefix']}-chr-prefix")
    return files, " ".join(args)


TASK_PLANS = {name: _task_plan(name) for name in TASKS}


def task_dir(task):
    return f"{RESULTS}/tasks/{task}"


def task_store(task, split):
    return f"{task_dir(task)}/{split}.h5"


def task_inputs(wildcards):
    return TASK_PLANS[wildcards.task][0]


def make_task_options(wildcards):
    """`genomics-lm make-task` options of a task: its inputs, the token stores' k/stride, its non-null settings."""
    k, stride = tokenizer_k_stride()
    return " ".join([TASK_PLANS[wildcards.task][1], f"--k {k} --stride {stride}",
                     option_string(TASKS[wildcards.task], MAKE_TASK_OPTIONS)])


# ---------------------------------------------------------------------------------------------------- finetune


def finetune_runs():
    """(task, attention, seed) of every fine-tuning run."""
    if not FINETUNE:
        return []
    return [(t, a, s) for t in TASKS for a in FINETUNE["attention"] for s in FINETUNE["seeds"]]


def finetune_run(task, attention, seed):
    """A fine-tuning run folder (trainer.default_root_dir): finetuned.pt, checkpoints/, csv/metrics.csv."""
    return f"{RESULTS}/finetune/{task}/{attention}_s{seed}"


def finetuned_model(task, attention, seed):
    return f"{finetune_run(task, attention, seed)}/finetuned.pt"


def task_pretrain_genome(task):
    genome = TASKS[task]["pretrain_genome"] or next(iter(config["genomes"]))
    if genome not in config["genomes"]:
        raise WorkflowError(f"config tasks: {task}: pretrain_genome {genome!r} is not a genome of `genomes`"
                            f" ({', '.join(config['genomes'])})")
    return genome


def finetune_pretrained(wildcards):
    """The pretrained model a run starts from (pretrained: true), none from scratch."""
    if not FINETUNE["pretrained"]:
        return []
    return [pretrained_model(task_pretrain_genome(wildcards.task), wildcards.attention)]


def finetune_options():
    """`genomics-lm finetune fit` options from config['finetune']; the model's tokenizer is the task stores'."""
    k, stride = tokenizer_k_stride()
    out = [f"--model.arch.tokenizer.k {k}", f"--model.arch.tokenizer.stride {stride}",
           f"--trainer.devices {FINETUNE['devices']}", f"--data.num_workers {FINETUNE['cpus'] - 1}",
           "--trainer.enable_progress_bar false"]
    for key in ("max_epochs", "max_steps", "limit_train_batches", "limit_val_batches", "accelerator"):
        if FINETUNE[key] is not None:
            out.append(f"--trainer.{key} {FINETUNE[key]}")
    if FINETUNE["batch_size"] is not None:
        out.append(f"--data.batch_size {FINETUNE['batch_size']}")
    if FINETUNE["extra"]:
        out.append(FINETUNE["extra"])
    return " ".join(out)


def finetune_resources():
    res = {"mem_mb": FINETUNE["mem_mb"], "runtime": by_attempt(FINETUNE["runtime"]), "cpus_per_task": FINETUNE["cpus"]}
    if FINETUNE["gpus"] > 0:
        res["gpu"] = FINETUNE["gpus"]
    return res


# ---------------------------------------------------------------------------------------------------- evaluate


def eval_dir(task, attention, seed):
    return f"{RESULTS}/eval/{task}/{attention}_s{seed}"


def metrics_file(task, attention, seed):
    return f"{eval_dir(task, attention, seed)}/metrics.json"


def compare_table(task):
    return f"{RESULTS}/eval/{task}/compare.tsv"


def baseline_cache():
    return f"{RESULTS}/baseline_cache"


def baseline_first(wildcards):
    """With the k-mer baseline, every evaluation of a task after the first waits for the first one, which fits the
    baseline into the cache: the baseline is fitted once per task, not once per concurrent job."""
    first = (FINETUNE["attention"][0], str(FINETUNE["seeds"][0]))
    if not EVALUATE["baseline"] or (wildcards.attention, wildcards.seed) == first:
        return []
    return [metrics_file(wildcards.task, *first)]


def evaluate_options():
    out = [f"--split {EVALUATE['split']}", f"--batch-size {EVALUATE['batch_size']}",
           f"--device {shlex.quote(EVALUATE['device'])}"]
    out.append(f"--baseline-cache {baseline_cache()}" if EVALUATE["baseline"] else "--no-baseline")
    if EVALUATE["both_strands"]:
        out.append("--both-strands")
    return " ".join(out)


def published_table():
    return [EVALUATE["published"]] if EVALUATE["published"] else []


# ---------------------------------------------------------------------------------------------------- long context
# config["long_context"] (workflow/rules/long_context.smk): experiment name -> tasks of `tasks` that build ONE genome
# task at several context lengths on the same rows (one select_bp >= every context_bp; a task with mask_outside_bp is
# the N-masked control). Their evaluations (every attention type and seed) make one table, RESULTS/context/NAME/, by
# `genomics-lm context-table --task-name NAME`, which refuses evaluations on different rows; the checks below find
# the same mistakes from the config, before any job (not after hours of fine-tuning).

DEFAULT_CONTEXT_BP = 1000  # make-task's --context-bp default (schema: tasks.*.context_bp "null: 1000")
# the settings of a genome task that choose its rows, labels and splits: equal across an experiment's tasks
# (select_bp is checked on its own first; context_bp and mask_outside_bp are what the experiment varies)
ROW_OPTIONS = ["genome", "peaks", "tss", "tss_format", "bin_bp", "neg_per_pos", "min_distance", "max_n_frac",
               "chrom_map", "chrom_prefix", "regulondb_mismatch", "block_bp", "gap_bp", "val_frac", "test_frac",
               "seed"]
# the real data `genomics-lm bench finetune` reads per length: the promoter sets at 70 and 300 bp, E. coli windows at
# any other length (genomics_lm/bench/finetune.py PROMOTER_SETS, SPLIT_FILES, GENOME; a test checks they agree)
BENCH_FINETUNE_PROMOTERS = {70: "promoters/gue_prom_core_all", 300: "promoters/gue_prom_300_tata"}
BENCH_FINETUNE_SPLITS = ["train.csv", "dev.csv", "test.csv"]
BENCH_FINETUNE_GENOME = "genomes/ecoli_k12_mg1655.fna.gz"


def context_bp(task):
    return TASKS[task]["context_bp"] or DEFAULT_CONTEXT_BP


def context_dir(name):
    return f"{RESULTS}/context/{name}"


def context_table_file(name):
    return f"{context_dir(name)}/context.tsv"


def context_bench_json(name):
    return f"{context_dir(name)}/bench.json"


def context_md(name):
    return f"{context_dir(name)}/context.md"


def context_metric_plot(name):
    return f"{context_dir(name)}/metric_vs_context.png"


def context_time_plot(name):
    return f"{context_dir(name)}/time_vs_context.png"


def context_table_outputs(name):
    """The files of an experiment's table (time_vs_context.png only with its benchmark)."""
    out = [context_table_file(name), context_md(name), context_metric_plot(name)]
    return out + [context_time_plot(name)] if LONG_CONTEXT[name]["bench"] else out


def context_runs(name):
    """(task, attention, seed) of every evaluation of an experiment, in the order of its tasks."""
    return [r for t in LONG_CONTEXT[name]["tasks"] for r in finetune_runs() if r[0] == t]


def context_lengths(name):
    """The experiment's distinct context lengths (bp), ascending: the benchmark's --lengths."""
    return sorted({context_bp(t) for t in LONG_CONTEXT[name]["tasks"]})


def _finetune_yaml():
    """The finetune model_config YAML (the benchmark times its model.arch, whose tokenizer the YAML fixes)."""
    path = FINETUNE["model_config"]
    try:
        with open(path) as fh:
            return yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise WorkflowError(f"config finetune: model_config {path}: cannot read it ({exc})")


def _context_bench_plan(name):
    """(input files, data folder, batch size or None) of an experiment's benchmark: the inputs are resolved (and
    registered for the checksum check) through input_file, like every input, and the data folder is theirs."""
    where = f"config long_context: {name}: bench"
    files, roots = [], set()
    for length in context_lengths(name):
        rels = ([f"{BENCH_FINETUNE_PROMOTERS[length]}/{f}" for f in BENCH_FINETUNE_SPLITS]
                if length in BENCH_FINETUNE_PROMOTERS else [BENCH_FINETUNE_GENOME])
        for rel in rels:
            f = input_file(rel, where)
            if f not in files:
                files.append(f)
                roots.add(f[: -len(rel) - 1])
    if len(roots) != 1:
        raise WorkflowError(f"{where}: its inputs are not in one folder ({', '.join(sorted(roots))}): put them all in"
                            f" the data folder, or all in {MANIFEST_PATH}")
    model = _finetune_yaml()
    tok = ((model.get("model") or {}).get("arch") or {}).get("tokenizer") or {}
    k = tok.get("k", 6)  # ModelConfig's default tokenizer: 6-mers, stride k
    yaml_tokenizer = (k, tok.get("stride") or k)
    if yaml_tokenizer != tokenizer_k_stride():
        raise WorkflowError(f"{where}: finetune.model_config {FINETUNE['model_config']} reads k={yaml_tokenizer[0]}"
                            f" stride={yaml_tokenizer[1]}, the tokenize section k={tokenizer_k_stride()[0]}"
                            f" stride={tokenizer_k_stride()[1]}: the benchmark would time other tokens than the runs"
                            " (make the model config's tokenizer the tokenize section's, or set bench: false)")
    batch = (LONG_CONTEXT[name]["bench_batch_size"] or FINETUNE["batch_size"]
             or (model.get("data") or {}).get("batch_size"))
    return files, roots.pop(), batch


def check_long_context(name):
    """An experiment's tasks: in `tasks`, genome tasks, one select_bp >= every context_bp, every other row setting
    equal, no two the same (context, input) cell. Raises a one-line WorkflowError naming the key."""
    where = f"config long_context: {name}"
    tasks = LONG_CONTEXT[name]["tasks"]
    for t in tasks:
        if t not in TASKS:
            raise WorkflowError(f"{where}: tasks: {t!r} is not a task of `tasks` ({', '.join(TASKS) or 'none'})")
        if task_kind(t) not in ("peaks", "tss"):
            raise WorkflowError(f"{where}: tasks: {t!r} is not a genome task (genome + peaks or genome + tss): it has"
                                " no context_bp to vary")
    largest = max(tasks, key=context_bp)
    unset = [t for t in tasks if TASKS[t]["select_bp"] is None]
    if unset:
        raise WorkflowError(f"{where}: select_bp is not set on {', '.join(unset)}: give every task the same select_bp,"
                            f" at least the largest context_bp ({context_bp(largest):,}), so every context has the"
                            " same rows")
    selects = {t: TASKS[t]["select_bp"] for t in tasks}
    if len(set(selects.values())) > 1:
        found = ", ".join(f"{t} {v:,}" for t, v in selects.items())
        raise WorkflowError(f"{where}: select_bp differs between the tasks ({found}): give every task the same"
                            f" select_bp, at least the largest context_bp ({context_bp(largest):,}), so every context"
                            " has the same rows")
    select = selects[largest]
    if select < context_bp(largest):
        raise WorkflowError(f"{where}: select_bp {select:,} is smaller than the context_bp of {largest}"
                            f" ({context_bp(largest):,}): the rows are chosen on a window holding every context")
    first = tasks[0]
    for t in tasks[1:]:
        for key in ROW_OPTIONS:
            if TASKS[t].get(key) != TASKS[first].get(key):
                raise WorkflowError(f"{where}: {key} differs between tasks {first} ({TASKS[first].get(key)!r}) and"
                                    f" {t} ({TASKS[t].get(key)!r}): only context_bp and mask_outside_bp may differ"
                                    " (the same rows at every context)")
    cells = {}
    for t in tasks:
        c, m = context_bp(t), TASKS[t]["mask_outside_bp"]
        if m is not None and m > c:
            raise WorkflowError(f"{where}: mask_outside_bp of {t} ({m:,}) is larger than its context_bp ({c:,})")
        if (c, m) in cells:
            what = "full input" if m is None else f"central {m:,} bp"
            raise WorkflowError(f"{where}: tasks {cells[(c, m)]} and {t} are the same cell (context_bp {c:,},"
                                f" {what}): give each task its own context_bp or mask_outside_bp")
        cells[(c, m)] = t


def context_bench_options(name):
    """`genomics-lm bench finetune` options of an experiment (besides --config and --json): its context lengths,
    the finetune attention types, the finetune section's threads; a short budget, as scripts/long_context.sh."""
    out = [f"--lengths {','.join(map(str, context_lengths(name)))}",
           f"--attentions {','.join(FINETUNE['attention'])}", f"--threads {FINETUNE['cpus']}",
           f"--data-dir {CONTEXT_BENCH[name][1]}",
           "--steps 3 --warmup 1 --eval-rows 16 --eval-repeats 1 --no-baseline --baseline-rows 32,8,16"]
    if CONTEXT_BENCH[name][2] is not None:
        out.append(f"--batch-size {CONTEXT_BENCH[name][2]}")
    return " ".join(out)


def context_bench_resources():
    """The benchmark's job: the finetune section's memory and runtime. No GPU: `genomics-lm bench finetune` times
    fp32 steps on the CPU only."""
    return {"mem_mb": FINETUNE["mem_mb"], "runtime": by_attempt(FINETUNE["runtime"]), "cpus_per_task": FINETUNE["cpus"]}


# ---------------------------------------------------------------------------------------------------- score
# Scoring with a fine-tuned checkpoint (score.smk): by default one the workflow trains.


def score_dir():
    return f"{RESULTS}/score"


def score_checkpoint():
    """config score.checkpoint: TASK/ATTENTION/SEED of a workflow run, a path, or null (the first run)."""
    ck = SCORE["checkpoint"]
    if ck is None:
        if not finetune_runs():
            raise WorkflowError("config score: no checkpoint: name one (TASK/ATTENTION/SEED of a workflow run, or a"
                                " path to a finetuned.pt), or add tasks and a finetune section")
        return finetuned_model(*finetune_runs()[0])
    parts = ck.split("/")
    if len(parts) == 3 and parts[0] in TASKS:
        task, attention, seed = parts
        if not FINETUNE or attention not in ("bigbird", "longformer", "dense") or not seed.isdigit():
            raise WorkflowError(f"config score: checkpoint {ck!r}: TASK/ATTENTION/SEED needs a finetune section, an"
                                " attention type (bigbird, longformer, dense) and a seed number")
        return finetuned_model(task, attention, int(seed))
    return ck


def score_input(key):
    """A score input: relative to the data folder, or absolute (manifest entries checked)."""
    return input_file(SCORE[key], f"config score: {key}")


def score_options(mode):
    """config['score'] as `genomics-lm score` options of one mode (sequences, variants, track)."""
    out = [f"--batch-size {SCORE['batch_size']}", f"--device {shlex.quote(SCORE['device'])}", "--no-progress"]
    if SCORE["window"] is not None:
        out.append(f"--window {SCORE['window']}")
    if SCORE["step"] is not None and mode != "variants":
        out.append(f"--step {SCORE['step']}")
    if SCORE["both_strands"]:
        out.append("--both-strands")
    if mode == "sequences":
        out.append(f"--aggregate {SCORE['aggregate']}")
    if mode == "variants" and SCORE["strict"]:
        out.append("--strict")
    if mode != "sequences" and SCORE["chrom_prefix"]:
        out.append(f"--{SCORE['chrom_prefix']}-chr-prefix")
    if mode == "track" and SCORE["out_chrom_prefix"]:
        out.append(f"--out-{SCORE['out_chrom_prefix']}-chr-prefix")
    return " ".join(out)


def score_resources():
    res = {"mem_mb": SCORE["mem_mb"], "runtime": by_attempt(SCORE["runtime"])}
    if SCORE["gpus"] > 0:
        res["gpu"] = SCORE["gpus"]
    return res


def score_targets():
    """The outputs config['score'] asks for."""
    out = []
    if SCORE["fasta"]:
        out.append(f"{score_dir()}/sequences.tsv")
    if SCORE["vcf"]:
        out.append(f"{score_dir()}/effects.tsv")
    if SCORE["track"]:
        out.append(f"{score_dir()}/track")
    return out


if SCORE:
    if (SCORE["vcf"] or SCORE["track"]) and not SCORE["genome"]:
        raise WorkflowError("config score: 'vcf' and 'track' need 'genome' (the reference FASTA)")
    SCORE_CHECKPOINT = score_checkpoint()
    SCORE_INPUTS = {key: score_input(key) for key in ("fasta", "vcf", "genome", "regions") if SCORE[key]}


# ---------------------------------------------------------------------------------------------------- bench, report


def bench_json():
    return f"{RESULTS}/bench/attention.json"


def bench_options():
    out = [option_string(BENCH, ["lengths", "methods", "passes", "repeats", "max_seconds", "threads"]),
           f"--device {shlex.quote(BENCH['device'])}"]
    return " ".join(out)


def bench_resources():
    res = {"mem_mb": BENCH["mem_mb"], "runtime": by_attempt(BENCH["runtime"])}
    if BENCH["gpus"] > 0:
        res["gpu"] = BENCH["gpus"]
    return res


def report_file():
    return f"{RESULTS}/report.html"


def patterns_dir():
    return f"{RESULTS}/patterns"


def report_options():
    """`genomics-lm report` options: every evaluation, run folder, pattern folder (and the optional parts)."""
    runs = finetune_runs()
    out = [f"--evals {' '.join(eval_dir(*r) for r in runs)}"]
    if EVALUATE["published"]:
        out.append(f"--published {shlex.quote(EVALUATE['published'])}")
    context = list(map(shlex.quote, REPORT["context"])) + [context_dir(name) for name in LONG_CONTEXT]
    if context:
        out.append(f"--context {' '.join(context)}")
    if REPORT["bench"]:
        out.append(f"--bench-attention {bench_json()}")
    if ATTENTIONS:
        pretrain_runs = [f"{g}/{a}={pretrain_run(g, a)}" for g in config["genomes"] for a in ATTENTIONS]
        out.append(f"--pretrain-runs {' '.join(pretrain_runs)}")
    finetune_runs_ = [f"{t}/{a}_s{s}={finetune_run(t, a, s)}" for t, a, s in runs]
    out.append(f"--finetune-runs {' '.join(finetune_runs_)}")
    out.append(f"--patterns {patterns_dir()}")
    return " ".join(out)


def report_inputs():
    runs = finetune_runs()
    inputs = [metrics_file(*r) for r in runs] + [compare_table(t) for t in TASKS] + [patterns_dir()]
    inputs += [pretrained_model(g, a) for g in config["genomes"] for a in ATTENTIONS] + published_table()
    if REPORT["bench"]:
        inputs.append(bench_json())
    for name in LONG_CONTEXT:  # the long-context tables (made by the workflow; report.context: made outside it)
        inputs += context_table_outputs(name)
    return inputs


if REPORT and not finetune_runs():
    raise WorkflowError("config report: the report needs tasks and a finetune section")
if FINETUNE and FINETUNE["pretrained"] and not PRETRAIN:
    raise WorkflowError("config finetune: pretrained: true needs a pretrain section (or set pretrained: false)")
if FINETUNE and not TASKS:
    raise WorkflowError("config finetune: no tasks to fine-tune (config `tasks`)")
for _task in TASKS if FINETUNE else []:
    task_pretrain_genome(_task)  # a wrong name is an error now, not when the DAG is built
if LONG_CONTEXT and not FINETUNE:
    raise WorkflowError("config long_context: the long-context experiment needs a finetune section (it tabulates the"
                        " evaluations of its tasks)")
for _name in LONG_CONTEXT:
    check_long_context(_name)
# each benchmark's inputs, data folder and batch size (its inputs registered for the checksum check below)
CONTEXT_BENCH = {n: _context_bench_plan(n) for n in LONG_CONTEXT if LONG_CONTEXT[n]["bench"]}

# every genome is tokenized: resolve (and register) its FASTA now, then check every manifest input the config uses
GENOME_FASTAS = {g: genome_input(g, f"config genomes: {g}") for g in config["genomes"]}
check_inputs()
