from pipeline.sources.urls import dataset_params


rule download:
    output:
        manifest=f"{RESULTS}/data/raw/{{dataset}}/manifest.json",
    log:
        f"{RESULTS}/logs/download/{{dataset}}.log",
    retries: 1
    conda:
        PIPELINE_ENV
    params:
        # redacted: params land in .snakemake/metadata and on the screen
        dataset=lambda w: dataset_params(CFG["datasets"][w.dataset]),
    script:
        "../scripts/download.py"
