rule download:
    output:
        manifest=f"{RESULTS}/data/raw/{{dataset}}/manifest.json",
    params:
        dataset=lambda w: CFG["datasets"][w.dataset],
    log:
        f"{RESULTS}/logs/download/{{dataset}}.log",
    retries: 1
    conda:
        PIPELINE_ENV
    script:
        "../scripts/download.py"
