from pipeline.config import prepare_hash


rule prepare:
    input:
        grids=lambda w: prepare_grids(w.experiment),
        manifests=lambda w: [
            raw_manifest(d)
            for d in experiment_datasets(CFG["experiments"][w.experiment])
        ],
    output:
        store=directory(f"{RESULTS}/{{experiment}}/prepared.zarr"),
    log:
        f"{RESULTS}/logs/prepare/{{experiment}}.log",
    conda:
        PIPELINE_ENV
    resources:
        mem_mb=4000,
    params:
        # only what determines prepared.zarr: a model or importance edit must not rerun it
        experiment=lambda w: {
            key: CFG["experiments"][w.experiment][key] for key in ("task", "splits")
        },
        config_hash=lambda w: prepare_hash(CFG, w.experiment),
        variables=lambda w: {
            d: CFG["datasets"][d].get("variables")
            for d in experiment_datasets(CFG["experiments"][w.experiment])
        },
    script:
        "../scripts/prepare.py"
