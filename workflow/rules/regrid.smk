rule regrid:
    input:
        manifest=lambda w: raw_manifest(w.dataset),
    output:
        store=directory(f"{RESULTS}/data/grid/{{dataset}}.zarr"),
    log:
        f"{RESULTS}/logs/regrid/{{dataset}}.log",
    conda:
        PIPELINE_ENV
    threads: 2
    resources:
        mem_mb=4000,
    params:
        dataset=lambda w: dataset_params(CFG["datasets"][w.dataset]),
        grid=lambda w: grid_of(w.dataset),
        time_step=lambda w: time_step_of(w.dataset),
    script:
        "../scripts/regrid.py"
