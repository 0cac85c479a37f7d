//! `deepinsight explain`: class activation maps back to features, and DeepFeature's refit.

use std::path::PathBuf;

use crate::explain::{self, ExplainOptions, Samples, Target, cam, refit as deepfeature};
use anyhow::{Result, bail};

use super::{input_paths, parse_input};

#[derive(clap::Args)]
pub struct Args {
    /// Run folder written by `deepinsight run`/`train`, e.g. models/demo.
    #[arg(long)]
    model: PathBuf,
    /// train, validation, test or all (of the run's samples, or of --input tables), or
    /// comma-separated sample ids.
    #[arg(long, default_value = "train")]
    samples: Samples,
    /// A new cohort instead of the run's own tables: MODALITY=FILE, once per modality.
    #[arg(long = "input", value_parser = parse_input)]
    inputs: Vec<(String, String)>,
    /// True classes of the --input samples (optional).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Output folder (replaced as a whole).
    #[arg(long)]
    out: PathBuf,
    /// saliency (|gradient| per pixel and channel, exact per feature), gradcam or hirescam
    /// (on a residual stage, region-level).
    #[arg(long, value_enum, default_value = "saliency")]
    method: cam::Method,
    /// Grad-CAM's residual stage, 1 to 4 (4 = the last convolutional stage; lower stages
    /// give finer maps).
    #[arg(long, default_value_t = cam::DEFAULT_STAGE)]
    stage: usize,
    /// Class each map explains: label (true class, else predicted), predicted, or a class name.
    #[arg(long, default_value = "label")]
    target: Target,
    /// Features whose score divided by the best score reaches this are `selected`.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Features named on top_features.png.
    #[arg(long, default_value_t = explain::DEFAULT_TOP)]
    top: usize,
    /// Gene sets (GMT) to report pathways from, when the run did not select by pathway.
    #[arg(long)]
    gmt: Option<PathBuf>,
    /// Match --gmt members to feature names ignoring case.
    #[arg(long)]
    case_insensitive: bool,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// DeepFeature's loop: keep the best features, fit the layout and train again, and
    /// report validation accuracy before and after (refit_report.json).
    #[arg(long)]
    refit: bool,
    /// With --refit: keep the best N features (default: the `selected` ones).
    #[arg(long)]
    keep_top: Option<usize>,
    /// With --refit: rounds of explain, keep, refit.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

pub fn execute(args: Args) -> Result<()> {
    let options = ExplainOptions {
        model: args.model,
        samples: args.samples,
        inputs: input_paths(args.inputs),
        labels: args.labels,
        out: args.out,
        cam: cam::CamOptions {
            method: args.method,
            stage: args.stage,
            batch_size: args.batch_size,
        },
        target: args.target,
        threshold: args.threshold,
        top: args.top,
        gmt: args.gmt,
        case_insensitive: args.case_insensitive,
    };
    if !args.refit && args.keep_top.is_some() {
        bail!("--keep-top goes with --refit");
    }
    let refit = args.refit.then(|| deepfeature::RefitOptions {
        keep: args
            .keep_top
            .map_or(deepfeature::Keep::Selected, deepfeature::Keep::Top),
        rounds: args.rounds,
    });
    if let Some(refit) = &refit {
        deepfeature::check(&options, refit)?;
    }
    let e = explain::run(&options)?;
    let r = &e.report;
    crate::outln!(
        "explained {} samples ({:?}, stage {}) -> {}",
        r.samples,
        r.method,
        r.stage,
        e.out.display()
    );
    if let Some(a) = r.accuracy {
        crate::outln!("accuracy on them: {a:.3}");
    }
    crate::outln!(
        "{} of {} features selected (normalised score >= {})",
        r.selected,
        r.features,
        r.threshold
    );
    for (i, (m, f, s)) in r.top.iter().take(10).enumerate() {
        crate::outln!("  {:>2}. {m}:{f}  {s:.3}", i + 1);
    }
    if let Some(refit) = &refit {
        let report = deepfeature::run(&options, &e.features, refit)?;
        let b = &report.before;
        crate::outln!(
            "before: {} features, validation accuracy {:.3}, macro-F1 {:.3}",
            b.features,
            b.accuracy,
            b.macro_f1
        );
        for (k, s) in report.rounds.iter().enumerate() {
            crate::outln!(
                "round {}: {} features, validation accuracy {:.3}, macro-F1 {:.3} ({})",
                k + 1,
                s.features,
                s.accuracy,
                s.macro_f1,
                s.run.display()
            );
        }
    }
    Ok(())
}
