//! The summary `run` and `train` print: samples, metrics beside the trivial baseline, the
//! layout's crowding, pathways and stage times.

use std::fmt;

use super::RunSummary;
use crate::select::pathways::PathwaySelection;

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self;
        writeln!(f, "run written to {}", s.run_dir.display())?;
        writeln!(
            f,
            "samples: {} aligned ({} train, {} validation, {} test), {} dropped",
            s.samples,
            s.train,
            s.validation,
            s.test,
            s.dropped.len()
        )?;
        for d in &s.dropped {
            writeln!(
                f,
                "  dropped {}: missing from {}",
                d.sample_id,
                d.missing_from.join(", ")
            )?;
        }
        writeln!(
            f,
            "features: {} selected; classes: {}",
            s.features,
            s.classes.join(", ")
        )?;
        if let Some(epoch) = s.resumed_from {
            writeln!(f, "resumed from the checkpoint of epoch {epoch}")?;
        }
        if let Some(epoch) = s.stopped_early {
            writeln!(
                f,
                "early stop after epoch {epoch}: no better validation score"
            )?;
        }
        // The validation samples chose the kept epoch, so their metrics flatter the model; the
        // test split (train.test_fraction) played no part in any choice.
        writeln!(
            f,
            "validation (best epoch {} of {}, chosen on these samples: optimistic): {}",
            s.best_epoch, s.epochs_run, s.metrics
        )?;
        let b = &s.baseline;
        let majority = &s.classes[b.class];
        writeln!(
            f,
            "  trivial baseline, always '{majority}' (most common in training), validation: {}",
            b.validation
        )?;
        if let Some(m) = &s.test_metrics {
            writeln!(
                f,
                "test ({} samples, held out from every choice): {m}",
                s.test
            )?;
        }
        if let Some(m) = &b.test {
            writeln!(f, "  trivial baseline, always '{majority}', test: {m}")?;
        }
        for (baseline, m) in &s.test_baselines {
            writeln!(
                f,
                "  {}, on the selected features of the training and validation samples, test: {m}",
                baseline.title()
            )?;
        }
        if s.test_metrics.is_none() {
            writeln!(
                f,
                "no test split: set train.test_fraction (e.g. 0.2) for metrics on samples that chose nothing"
            )?;
        }
        writeln!(
            f,
            "{:<12} {:>8} {:>7} {:>9} {:>8} {:>7} {:>10}",
            "channel", "features", "pixels", "mean/px", "max/px", "shared", "moved(px)"
        )?;
        for r in &s.layout {
            let moved = r
                .displacement
                .map_or("-".to_string(), |d| format!("{:.2}/{:.1}", d.mean, d.max));
            writeln!(
                f,
                "{:<12} {:>8} {:>7} {:>9.2} {:>8} {:>6.1}% {:>10}",
                r.channel,
                r.features,
                r.pixels_used,
                r.mean_features_per_pixel,
                r.max_features_per_pixel,
                100.0 * r.shared_fraction,
                moved
            )?;
        }
        if let Some(p) = &s.pathways {
            pathways(f, p)?;
        }
        writeln!(f, "{:<10} {:>9}", "stage", "seconds")?;
        for (name, secs) in &s.stages {
            writeln!(f, "{name:<10} {secs:>9.2}")?;
        }
        let total: f64 = s.stages.iter().map(|(_, t)| t).sum();
        write!(f, "{:<10} {:>9.2}", "total", total)
    }
}

fn pathways(f: &mut fmt::Formatter<'_>, p: &PathwaySelection) -> fmt::Result {
    let c = &p.coverage;
    let covered: Vec<String> = c
        .modalities
        .iter()
        .map(|m| format!("{} {}/{}", m.modality, m.in_pathway, m.features))
        .collect();
    writeln!(
        f,
        "gene sets: {} in {}, {} with >= {} features, {} match nothing; features in a set: {}",
        c.gene_sets,
        p.gmt,
        c.sets_with_min_members,
        c.min_members,
        c.empty_sets.len(),
        covered.join(", ")
    )?;
    if c.unknown_members > 0 {
        writeln!(
            f,
            "  {} member names are not features (e.g. {})",
            c.unknown_members,
            c.unknown_examples.join(", ")
        )?;
    }
    writeln!(
        f,
        "{:<5} {:<24} {:>10} {:>8}",
        "rank", "pathway", "score", "features"
    )?;
    for g in &p.groups {
        let rank = g.rank.map_or("-".to_string(), |r| r.to_string());
        writeln!(
            f,
            "{rank:<5} {:<24} {:>10.2} {:>8}",
            g.name,
            g.score,
            g.features.len()
        )?;
    }
    Ok(())
}
