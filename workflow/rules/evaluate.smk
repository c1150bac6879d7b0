RUN = f"{RESULTS}/{{experiment}}/runs/{{model}}/seed{{seed}}"


rule evaluate:
    input:
        prepared=lambda w: prepared_store(w.experiment),
        model=f"{RUN}/model.pt",
        run_id=f"{RUN}/mlflow_run_id",
    output:
        metrics=f"{RUN}/metrics.csv",
        predictions=f"{RUN}/predictions.nc",
    log:
        f"{RESULTS}/logs/evaluate/{{experiment}}/{{model}}-seed{{seed}}.log",
    conda:
        PIPELINE_ENV
    resources:
        mem_mb=2000,
    params:
        variant=lambda w: CFG["experiments"][w.experiment]["variants"][w.model],
        uri=tracking_uri(CFG),
    script:
        "../scripts/evaluate.py"


rule importance:
    input:
        prepared=lambda w: prepared_store(w.experiment),
        model=f"{RUN}/model.pt",
        run_id=f"{RUN}/mlflow_run_id",
        # the same MLflow run: log after evaluate, never concurrently with it
        metrics=f"{RUN}/metrics.csv",
    output:
        table=f"{RUN}/importance.csv",
        plot=f"{RUN}/plots/importance.png",
        plot_pdf=f"{RUN}/plots/importance.pdf",
    log:
        f"{RESULTS}/logs/importance/{{experiment}}/{{model}}-seed{{seed}}.log",
    conda:
        PIPELINE_ENV
    resources:
        mem_mb=2000,
    params:
        variant=lambda w: CFG["experiments"][w.experiment]["variants"][w.model],
        settings=lambda w: CFG["experiments"][w.experiment]["importance"],
        uri=tracking_uri(CFG),
    script:
        "../scripts/importance.py"
