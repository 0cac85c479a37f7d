//! Jobs without a terminal (Slurm, Kubernetes, CI, `> log`) get a plain progress line on stdout
//! per stage and epoch of a run, and per batch of an explanation, as the work happens.

mod common;

use common::{deepinsight, small_pipeline, stderr, write_small_cohort};

#[test]
fn a_run_and_an_explanation_log_each_stage_epoch_and_batch_when_stdout_is_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    write_small_cohort(dir.path());
    let pipeline = small_pipeline("").replace("epochs = 1", "epochs = 3");
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let out = deepinsight(dir.path(), &["run", "p.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting '{prefix}': {stdout}"))
    };
    // In the order the work happens, each with its figures, before the final report.
    let order = [
        at("stage load: "),
        at("stage select: "),
        at("stage layout: "),
        at("epoch 1/3: train loss "),
        at("epoch 2/3: "),
        at("epoch 3/3: "),
        at("stage train: "),
        at("stage write: "),
        at("run written to"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    let epoch = lines[order[3]];
    for field in ["validation loss", "accuracy", "macro-F1", " s"] {
        assert!(epoch.contains(field), "{epoch}");
    }

    let out = deepinsight(
        dir.path(),
        &[
            "explain",
            "--model",
            "models/small",
            "--out",
            "why",
            "--batch-size",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let batches = stdout
        .lines()
        .filter(|l| l.starts_with("Saliency maps: "))
        .count();
    assert!(batches >= 2, "a line per batch of 8 samples: {stdout}");
}
