rule download:
    output:
        manifest=f"{RESULTS}/data/raw/{{dataset}}/manifest.json",
    log:
        f"{RESULTS}/logs/download/{{dataset}}.log",
    retries: 1
    conda:
        PIPELINE_ENV
    params:
        dataset=lambda w: CFG["datasets"][w.dataset],
    script:
        "../scripts/download.py"
