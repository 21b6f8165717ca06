# Shared helpers: validate the config against the JSON schema, resolve input and output paths.
import os
from pathlib import Path

from snakemake.utils import validate

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


def all_targets():
    targets = [token_store(g, s) for g in config["genomes"] for s in SPLITS]
    return targets
