rule summarize:
    input:
        runs=lambda w: [f"{run}/importance.csv" for run in run_dirs(w.experiment)],
        metrics=lambda w: [f"{run}/metrics.csv" for run in run_dirs(w.experiment)],
        prepared=lambda w: prepared_store(w.experiment),
        mlflow=rules.mlflow_setup.output.ids,
    output:
        table=report(
            f"{RESULTS}/{{experiment}}/summary/summary.csv",
            caption="../report/summary_table.rst",
            category="Summary",
        ),
        best=report(
            f"{RESULTS}/{{experiment}}/summary/best_forecasts.csv",
            caption="../report/best_forecasts.rst",
            category="Summary",
        ),
        figures=report(
            directory(f"{RESULTS}/{{experiment}}/summary/figures"),
            patterns=["{figure}.png"],
            caption="../report/summary_figures.rst",
            category="Summary",
            labels={"experiment": "{experiment}", "figure": "{figure}"},
        ),
        run_id=f"{RESULTS}/{{experiment}}/summary/mlflow_run_id",
    log:
        f"{RESULTS}/logs/summarize/{{experiment}}.log",
    conda:
        PIPELINE_ENV
    params:
        run_dirs=lambda w: run_dirs(w.experiment),
        uri=tracking_uri(CFG),
    script:
        "../scripts/summarize.py"
