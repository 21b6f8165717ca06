# Shared helpers: validate the config against the JSON schema, resolve input and output paths.
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

if not config:
    raise WorkflowError("no configuration: pass --configfile (e.g. --configfile configs/demo.yaml)")
validate(config, schema="../schemas/config.schema.yaml")

SPLITS = ["train", "val", "test"]
RESULTS = config["results"]


def data_dir():
    """Inputs are read from $GENOMICS_LM_DATA if set, else from config['data_dir'] (relative to the workdir)."""
    return Path(os.environ.get("GENOMICS_LM_DATA", config["data_dir"]))


def genome_fasta(wildcards):
    path = Path(config["genomes"][wildcards.genome]["fasta"])
    return str(path if path.is_absolute() else data_dir() / path)


def token_store(genome, split):
    return f"{RESULTS}/tokens/{genome}/{split}.h5"


def pretrained_model(genome, attention):
    return f"{RESULTS}/pretrain/{genome}/{attention}/pretrained.pt"


def all_targets():
    """Token stores of every genome; with a `pretrain` section, a pretrained model per genome x attention."""
    targets = [token_store(g, s) for g in config["genomes"] for s in SPLITS]
    if "pretrain" in config:
        attentions = config["pretrain"].get("attention", ["bigbird"])
        targets += [pretrained_model(g, a) for g in config["genomes"] for a in attentions]
    return targets
