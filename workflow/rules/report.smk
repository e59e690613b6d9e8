# Report: the leaderboard (CSV, Markdown, self-contained HTML) with each task's baseline row.


rule report:
    input:
        metrics=all_metrics(),
        baselines=expand(
            "results/baselines/{task}/metrics.json", task=sorted(config["tasks"])
        ),
        code=code("seqpipe.evaluation.report"),
    output:
        csv=report(
            REPORT["csv"], category="Leaderboard", caption="../report/leaderboard.rst"
        ),
        md=REPORT["md"],
        html=report(
            REPORT["html"], category="Leaderboard", caption="../report/leaderboard.rst"
        ),
        figures=report(
            directory("results/report/figures"),
            patterns=["{name}.png"],
            category="Figures",
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
