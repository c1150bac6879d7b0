from pipeline.config import run_hash


localrules:
    mlflow_setup,


rule mlflow_setup:
    output:
        ids=f"{RESULTS}/mlflow_experiments.json",
    log:
        f"{RESULTS}/logs/mlflow_setup.log",
    conda:
        PIPELINE_ENV
    params:
        uri=tracking_uri(CFG),
        names=EXPERIMENTS,
        artifact_root=CFG["mlflow"]["artifact_root"],
    script:
        "../scripts/mlflow_setup.py"


rule train:
    input:
        prepared=lambda w: prepared_store(w.experiment),
        mlflow=rules.mlflow_setup.output.ids,
    output:
        model=f"{RESULTS}/{{experiment}}/runs/{{model}}/seed{{seed}}/model.pt",
        history=f"{RESULTS}/{{experiment}}/runs/{{model}}/seed{{seed}}/history.csv",
        run_id=f"{RESULTS}/{{experiment}}/runs/{{model}}/seed{{seed}}/mlflow_run_id",
    log:
        f"{RESULTS}/logs/train/{{experiment}}/{{model}}-seed{{seed}}.log",
    conda:
        PIPELINE_ENV
    threads: 1
    resources:
        mem_mb=4000,
        gpu=lambda w: train_gpus(w.experiment, w.model),
        tasks=lambda w: train_processes(w.experiment, w.model),
        tasks_per_gpu=1,
        mpi=lambda w: train_mpi(w.experiment, w.model),
    params:
        variant=lambda w: CFG["experiments"][w.experiment]["variants"][w.model],
        run_hash=lambda w: run_hash(CFG, w.experiment, w.model, int(w.seed)),
        uri=tracking_uri(CFG),
        gpu_slots=f"{RESULTS}/.gpu_slots",
    script:
        "../scripts/train.py"
