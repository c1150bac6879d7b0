rule regrid:
    input:
        manifest=lambda w: raw_manifest(w.dataset),
    output:
        store=directory(f"{RESULTS}/data/grid/{{dataset}}.zarr"),
    params:
        dataset=lambda w: CFG["datasets"][w.dataset],
        grid=lambda w: grid_of(w.dataset),
    log:
        f"{RESULTS}/logs/regrid/{{dataset}}.log",
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        PIPELINE_ENV
    script:
        "../scripts/regrid.py"
