# Manifest inputs -> RESULTS/inputs/PATH: copied from the data folder ($GENOMICS_LM_DATA or data_dir), or downloaded
# from the manifest URL with `download: true` when the data folder lacks it, and checked against the manifest's
# sha256 either way (a mismatch fails the job, naming the file and both hashes, before any job that reads it).
# common.smk already checked the files present at parse time; this rule checks the bytes the stages actually read.
# A local rule: a copy is not worth a cluster job (and compute nodes may have no network).


localrules:
    fetch_input,


rule fetch_input:
    input:
        source=fetch_source,
    output:
        file=input_copy("{path}"),
    log:
        log_file("inputs", "{path}"),
    benchmark:
        benchmark_file("inputs", "{path}")
    wildcard_constraints:
        path=names_regex(MANIFEST),
    params:
        fetch=fetch_command,
        source=lambda wc, input: input.source or MANIFEST[wc.path]["url"],
        sha256=lambda wc: MANIFEST[wc.path]["sha256"],
        manifest=MANIFEST_PATH,
    conda:
        CONDA_ENV
    shell:
        "( {params.fetch} ) > {output.file}.part 2> {log}"
        " && actual=$(sha256sum {output.file}.part | cut -d ' ' -f 1)"
        " && if [ $actual != {params.sha256} ]; then"
        " echo checksum mismatch: {wildcards.path} '({params.source}):' sha256 $actual, expected {params.sha256}"
        " '({params.manifest})' | tee -a {log} >&2; rm -f {output.file}.part; exit 1; fi"
        " && mv {output.file}.part {output.file} && echo {wildcards.path} sha256 $actual OK >> {log}"
