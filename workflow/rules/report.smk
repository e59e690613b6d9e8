# Report: the leaderboard (CSV, Markdown, self-contained HTML) with each task's baseline row, test
# metrics with bootstrap intervals and paired tests against the baseline (from the predictions.h5
# files beside the metrics), and the figures Snakemake's report shows per task.


rule report:
    """Leaderboard of every (task, model) against its baseline, with intervals and figures."""
    input:
        metrics=all_metrics(),
        baselines=expand(
            "results/baselines/{task}/metrics.json", task=sorted(config["tasks"])
        ),
        predictions=all_predictions(),
        code=code("seqpipe.evaluation.report"),
        templates=local(report_templates()),  # not Python: no code stamp sees them; read here, not from storage
    output:
        csv=report(
            REPORT["csv"],
            category="Leaderboard",
            labels={"file": "leaderboard.csv", "content": "every number"},
            caption="../report/leaderboard.rst",
        ),
        md=REPORT["md"],
        html=report(
            REPORT["html"],
            category="Leaderboard",
            labels={"file": "leaderboard.html", "content": "tables and figures"},
            caption="../report/leaderboard.rst",
        ),
        figures=report(
            directory(REPORT["figures"]),
            patterns=["{task}/{kind}/{model}.png"],
            category="Results per task",
            subcategory="{task}",
            labels={"model": "{model}", "figure": "{kind}"},
            caption="../report/figures.rst",
        ),
    log:
        "logs/report.log",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        **job_resources("data"),
    shell:
        "seqpipe report --metrics {input.metrics:q} {input.baselines:q} --csv {output.csv:q}"
        " --md {output.md:q} --html {output.html:q} --figures {output.figures:q} > {log:q} 2>&1"
