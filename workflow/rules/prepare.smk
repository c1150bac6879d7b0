from pipeline.config import prepare_hash


rule prepare:
    input:
        grids=lambda w: [
            grid_store(d) for d in experiment_datasets(CFG["experiments"][w.experiment])
        ],
        manifests=lambda w: [
            raw_manifest(d) for d in experiment_datasets(CFG["experiments"][w.experiment])
        ],
    output:
        store=directory(f"{RESULTS}/{{experiment}}/prepared.zarr"),
    params:
        experiment=lambda w: CFG["experiments"][w.experiment],
        config_hash=lambda w: prepare_hash(CFG, w.experiment),
    log:
        f"{RESULTS}/logs/prepare/{{experiment}}.log",
    resources:
        mem_mb=4000,
    conda:
        PIPELINE_ENV
    script:
        "../scripts/prepare.py"
