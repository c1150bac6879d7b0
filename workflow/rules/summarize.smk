rule summarize:
    input:
        runs=lambda w: [f"{run}/importance.csv" for run in run_dirs(w.experiment)],
        metrics=lambda w: [f"{run}/metrics.json" for run in run_dirs(w.experiment)],
        prepared=lambda w: prepared_store(w.experiment),
        mlflow=rules.mlflow_setup.output.ids,
    output:
        table=report(
            f"{RESULTS}/{{experiment}}/summary/summary.csv",
            caption="../report/summary_table.rst",
            category="Summary",
        ),
        skill=report(
            f"{RESULTS}/{{experiment}}/summary/skill_vs_lead.png",
            caption="../report/skill_vs_lead.rst",
            category="Summary",
        ),
        heatmap=report(
            f"{RESULTS}/{{experiment}}/summary/importance_heatmap.png",
            caption="../report/importance_heatmap.rst",
            category="Interpretation",
        ),
        maps=report(
            f"{RESULTS}/{{experiment}}/summary/example_maps.png",
            caption="../report/example_maps.rst",
            category="Interpretation",
        ),
        best=report(
            f"{RESULTS}/{{experiment}}/summary/best_per_lead.csv",
            caption="../report/best_per_lead.rst",
            category="Summary",
        ),
        skill_pdf=f"{RESULTS}/{{experiment}}/summary/skill_vs_lead.pdf",
        heatmap_pdf=f"{RESULTS}/{{experiment}}/summary/importance_heatmap.pdf",
        maps_pdf=f"{RESULTS}/{{experiment}}/summary/example_maps.pdf",
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
