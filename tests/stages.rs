//! Stage-level properties, through the library API.

mod common;

use deepinsight::PipelineConfig;
use deepinsight::config::{
    ChannelMode, EmbedMethod, LayoutSettings, ModelSettings, NormMethod, TrainSettings,
};
use deepinsight::layout::Layout;
use deepinsight::omics::{Cohort, Modality};
use deepinsight::render::render_batch;
use deepinsight::select::FeatureSpace;
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn config(extra: &str) -> PipelineConfig {
    PipelineConfig::from_toml(&format!(
        "name = \"t\"\n{extra}\n[data]\nlabels = \"l\"\n[data.modalities]\nm = \"m\"\n"
    ))
    .unwrap()
}

fn random_cohort(samples: usize, features: usize, seed: u64) -> Cohort {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values = Array2::from_shape_fn((samples, features), |_| rng.random_range(0.0f32..10.0));
    Cohort {
        sample_ids: (0..samples).map(|i| format!("S{i}")).collect(),
        labels: (0..samples).map(|i| i % 2).collect(),
        classes: vec!["a".into(), "b".into()],
        modalities: vec![Modality {
            name: "m".into(),
            feature_names: (0..features).map(|j| format!("f{j}")).collect(),
            values,
        }],
        dropped: vec![],
    }
}

#[test]
fn normalisation_statistics_come_from_training_samples_only() {
    for method in ["norm-1", "norm-2"] {
        let config = config(&format!("[normalise]\nmethod = \"{method}\""));
        let mut cohort = random_cohort(20, 8, 1);
        cohort.modalities[0].values[[3, 2]] = f32::NAN;
        let train: Vec<usize> = (0..15).collect();
        let fitted = FeatureSpace::fit(&cohort, &train, &config.select, &config.normalise).unwrap();

        // Wild values in validation rows change nothing...
        let mut shifted = cohort.clone();
        shifted.modalities[0].values.row_mut(17).fill(1e6);
        shifted.modalities[0].values[[18, 0]] = -1e6;
        assert_eq!(
            FeatureSpace::fit(&shifted, &train, &config.select, &config.normalise).unwrap(),
            fitted,
            "{method}"
        );

        // ...while the same change in a training row does.
        let mut shifted = cohort.clone();
        shifted.modalities[0].values.row_mut(4).fill(1e6);
        assert_ne!(
            FeatureSpace::fit(&shifted, &train, &config.select, &config.normalise).unwrap(),
            fitted,
            "{method}"
        );

        // Validation samples outside the training range are clipped into [0, 1].
        let mut wild = cohort.clone();
        wild.modalities[0].values.row_mut(17).fill(1e6);
        let values = fitted.transform(&wild).unwrap();
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(values[[17, 0]], 1.0);
    }
}

#[test]
fn perfectly_correlated_features_share_or_neighbour_a_pixel_under_pca() {
    let config = config("[normalise]\nmethod = \"norm-1\"\n[select]\ntop_k = 100");
    let mut cohort = random_cohort(40, 30, 2);
    // f29 = 2 * f5 + 3: a perfectly correlated pair.
    let copy = cohort.modalities[0]
        .values
        .column(5)
        .mapv(|x| 2.0 * x + 3.0);
    cohort.modalities[0].values.column_mut(29).assign(&copy);
    let train: Vec<usize> = (0..40).collect();
    let space = FeatureSpace::fit(&cohort, &train, &config.select, &config.normalise).unwrap();
    let values = space.transform(&cohort).unwrap();
    let layout_config = LayoutSettings {
        method: EmbedMethod::Pca,
        mode: ChannelMode::Shared,
        height: 32,
        width: 32,
        ..LayoutSettings::default()
    };
    let layout = Layout::fit(
        values.view(),
        &[("m".into(), (0..30).collect())],
        &space.feature_list(),
        &layout_config,
        1,
    )
    .unwrap();
    let pixels = &layout.channels[0].pixels;
    let (a, b) = (pixels[5], pixels[29]);
    let distance = a[0].abs_diff(b[0]).max(a[1].abs_diff(b[1]));
    assert!(distance <= 1, "pixels {a:?} and {b:?}");
    // And the layout is not degenerate: the other features spread over many pixels.
    let distinct: std::collections::HashSet<_> = pixels.iter().collect();
    assert!(
        distinct.len() >= 20,
        "only {} distinct pixels",
        distinct.len()
    );
}

#[test]
fn saved_then_loaded_layout_transforms_identically() {
    let config = config("[select]\ntop_k = 100");
    let cohort = random_cohort(30, 25, 3);
    let train: Vec<usize> = (0..24).collect();
    let space = FeatureSpace::fit(&cohort, &train, &config.select, &config.normalise).unwrap();
    let values = space.transform(&cohort).unwrap();
    let layout_config = LayoutSettings {
        method: EmbedMethod::Tsne,
        mode: ChannelMode::Shared,
        height: 24,
        width: 24,
        perplexity: 5.0,
        iterations: 300,
        ..LayoutSettings::default()
    };
    let train_values = values.select(Axis(0), &train);
    let layout = Layout::fit(
        train_values.view(),
        &[("m".into(), (0..25).collect())],
        &space.feature_list(),
        &layout_config,
        9,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout.json");
    std::fs::write(&path, layout.save_json().unwrap()).unwrap();
    let loaded = Layout::load(&path).unwrap();
    assert_eq!(loaded, layout);
    let before = render_batch(&layout, values.view()).unwrap();
    let after = render_batch(&loaded, values.view()).unwrap();
    assert_eq!(before.len(), 30 * 24 * 24);
    assert!(
        before
            .iter()
            .zip(&after)
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );
    assert!(before.iter().any(|&v| v > 0.0));
}

#[test]
fn tiny_resnet_beats_chance_on_the_bundled_cohort() {
    let root = common::root();
    let mut config = PipelineConfig::from_file(&root.join("pipelines/demo.toml")).unwrap();
    for path in config
        .data
        .modalities
        .values_mut()
        .chain([&mut config.data.labels])
    {
        *path = root.join(&*path);
    }
    let out = tempfile::tempdir().unwrap();
    config.output_dir = out.path().to_path_buf();
    config.seed = 5;
    config.select.top_k = 60;
    config.select.top_k_per_modality.clear();
    config.layout = LayoutSettings {
        method: EmbedMethod::Pca,
        mode: ChannelMode::Channels,
        height: 24,
        width: 24,
        ..LayoutSettings::default()
    };
    config.model = ModelSettings {
        width: 8,
        ..ModelSettings::default()
    };
    config.train = TrainSettings {
        epochs: 4,
        batch_size: 16,
        learning_rate: 3e-3,
        validation_fraction: 0.25,
        ..TrainSettings::default()
    };
    config.validate().unwrap();
    // The real pipeline: selection and layout on the training split, then the network.
    let trained = deepinsight::pipeline::run(&config).unwrap();
    assert_eq!(config.normalise.method, NormMethod::Norm2);
    assert!(
        trained.metrics.accuracy >= 0.6,
        "validation accuracy {} (chance 0.33), best epoch {} of {}",
        trained.metrics.accuracy,
        trained.best_epoch,
        trained.epochs_run
    );
}

#[test]
fn synth_regenerates_the_bundled_data_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::deepinsight(dir.path(), &["synth", "--seed", "7", "--out", "fresh"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    for name in [
        "genomics.parquet",
        "proteomics.parquet",
        "metabolomics.parquet",
        "microbiome.parquet",
        "labels.parquet",
        "pathways.gmt",
    ] {
        let fresh = std::fs::read(dir.path().join("fresh").join(name)).unwrap();
        let bundled = std::fs::read(common::root().join("data").join(name)).unwrap();
        assert!(fresh == bundled, "{name} differs from data/{name}");
    }
}
