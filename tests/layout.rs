//! Layout stage through the library API: every embedding, precomputed coordinates, per-channel
//! settings, collision policies, degenerate inputs.

use std::collections::HashSet;

use deepinsight::bench::synthetic;
use deepinsight::config::{ChannelMode, ChannelOverride, Collisions, EmbedMethod, LayoutSettings};
use deepinsight::layout::Layout;
use deepinsight::render::RenderPlan;
use ndarray::Array2;

fn names(groups: &[(String, Vec<usize>)]) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), String::new()); groups.iter().map(|g| g.1.len()).sum()];
    for (m, cols) in groups {
        for &c in cols {
            out[c] = (m.clone(), format!("f{c}"));
        }
    }
    out
}

fn two_modalities() -> (Array2<f32>, Vec<(String, Vec<usize>)>) {
    let x = synthetic(40, 150, 3);
    let groups = vec![
        ("alpha".to_string(), (0..100).collect()),
        ("beta".to_string(), (100..150).collect()),
    ];
    (x, groups)
}

fn small(method: EmbedMethod, mode: ChannelMode, collisions: Collisions) -> LayoutSettings {
    LayoutSettings {
        method,
        mode,
        collisions,
        height: 20,
        width: 20,
        perplexity: 10.0,
        iterations: 300,
        ..LayoutSettings::default()
    }
}

#[test]
fn every_method_gives_a_complete_layout_in_both_modes() {
    let (x, groups) = two_modalities();
    let names = names(&groups);
    for method in [EmbedMethod::Pca, EmbedMethod::Kpca, EmbedMethod::Tsne] {
        let shared = Layout::fit(
            x.view(),
            &groups,
            &names,
            &small(method, ChannelMode::Shared, Collisions::Assign),
            1,
        )
        .unwrap();
        assert_eq!(shared.n_channels(), 1);
        assert_eq!(shared.channels[0].features.len(), 150);
        let channels = Layout::fit(
            x.view(),
            &groups,
            &names,
            &small(method, ChannelMode::Channels, Collisions::Assign),
            1,
        )
        .unwrap();
        assert_eq!(channels.n_channels(), 2, "{method:?}");
        assert_eq!(channels.channels[1].name, "beta");
        for report in shared.report().iter().chain(&channels.report()) {
            assert_eq!(
                report.shared_fraction, 0.0,
                "{method:?}: assign shares no pixel"
            );
            assert_eq!(report.pixels_used, report.features);
            assert!(report.displacement.is_some());
            assert_eq!(report.kl_divergence.is_some(), method == EmbedMethod::Tsne);
        }
    }
}

#[test]
fn modality_overrides_pick_the_method_per_channel() {
    let (x, groups) = two_modalities();
    let mut config = small(EmbedMethod::Tsne, ChannelMode::Channels, Collisions::Bin);
    config.modality.insert(
        "beta".into(),
        ChannelOverride {
            method: Some(EmbedMethod::Pca),
            ..ChannelOverride::default()
        },
    );
    let layout = Layout::fit(x.view(), &groups, &names(&groups), &config, 1).unwrap();
    let methods: Vec<EmbedMethod> = layout.report().iter().map(|r| r.method).collect();
    assert_eq!(methods, vec![EmbedMethod::Tsne, EmbedMethod::Pca]);
}

#[test]
fn precomputed_coordinates_are_used_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coords.csv");
    // Two features only, on a diagonal: a degenerate hull that must still give a layout.
    std::fs::write(&path, "feature,x,y\nf0,0.0,0.0\nf1,3.0,3.0\nunused,9,9\n").unwrap();
    let x = synthetic(10, 2, 1);
    let groups = vec![("m".to_string(), vec![0, 1])];
    let config = LayoutSettings {
        method: EmbedMethod::Precomputed,
        coordinates: Some(path.clone()),
        height: 8,
        width: 8,
        ..LayoutSettings::default()
    };
    let layout = Layout::fit(x.view(), &groups, &names(&groups), &config, 1).unwrap();
    let px = &layout.channels[0].pixels;
    assert_eq!(layout.channels[0].embedding, vec![[0.0, 0.0], [3.0, 3.0]]);
    assert_ne!(px[0], px[1]);
    assert_eq!(
        px[0][0], px[1][0],
        "the diagonal is turned horizontal: one row"
    );

    std::fs::write(&path, "feature,x,y\nf0,0.0,0.0\n").unwrap();
    let err = format!(
        "{:#}",
        Layout::fit(x.view(), &groups, &names(&groups), &config, 1).unwrap_err()
    );
    assert!(err.contains("coords.csv") && err.contains("'f1'"), "{err}");
    std::fs::write(&path, "feature,x,y\nf0,0.0,0.0\nf1,zero,1\n").unwrap();
    let err = format!(
        "{:#}",
        Layout::fit(x.view(), &groups, &names(&groups), &config, 1).unwrap_err()
    );
    assert!(err.contains("row 2"), "{err}");
}

#[test]
fn fewer_than_three_features_is_a_clear_error_for_embeddings() {
    let x = synthetic(10, 2, 1);
    let groups = vec![("m".to_string(), vec![0, 1])];
    for method in [EmbedMethod::Pca, EmbedMethod::Tsne] {
        let config = small(method, ChannelMode::Shared, Collisions::Bin);
        let err = format!(
            "{:#}",
            Layout::fit(x.view(), &groups, &names(&groups), &config, 1).unwrap_err()
        );
        assert!(err.contains("at least 3 features, got 2"), "{err}");
    }
}

#[test]
fn collinear_features_give_a_defined_layout() {
    // Feature j = j * base profile: every PCA score lies on one line.
    let base: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).sin()).collect();
    let x = Array2::from_shape_fn((12, 6), |(i, j)| base[i] * (j + 1) as f32);
    let groups = vec![("m".to_string(), (0..6).collect())];
    let config = small(EmbedMethod::Pca, ChannelMode::Shared, Collisions::Assign);
    let layout = Layout::fit(x.view(), &groups, &names(&groups), &config, 1).unwrap();
    let distinct: HashSet<_> = layout.channels[0].pixels.iter().collect();
    assert_eq!(distinct.len(), 6);
}

#[test]
fn more_features_than_pixels_under_assign_says_what_to_change() {
    let x = synthetic(20, 80, 1);
    let groups = vec![("m".to_string(), (0..80).collect())];
    let mut config = small(EmbedMethod::Pca, ChannelMode::Shared, Collisions::Assign);
    config.height = 8;
    config.width = 8;
    let err = format!(
        "{:#}",
        Layout::fit(x.view(), &groups, &names(&groups), &config, 1).unwrap_err()
    );
    assert!(
        err.contains("80 features")
            && err.contains("64 pixels")
            && err.contains("collisions = \"bin\""),
        "{err}"
    );
}

#[test]
fn transform_is_the_same_one_by_one_and_in_parallel() {
    let (x, groups) = two_modalities();
    let layout = Layout::fit(
        x.view(),
        &groups,
        &names(&groups),
        &small(EmbedMethod::Pca, ChannelMode::Channels, Collisions::Bin),
        1,
    )
    .unwrap();
    let plan = RenderPlan::new(&layout);
    let batch = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| plan.render_batch(x.view()).unwrap());
    let mut one = vec![0.0; plan.image_len()];
    for (i, chunk) in batch.chunks(plan.image_len()).enumerate() {
        plan.render_into(x.row(i), &mut one);
        assert_eq!(one, chunk, "sample {i}");
    }
    // Bin leaves shared pixels here, whose value is the mean of their features.
    let report = layout.report();
    assert!(report.iter().any(|r| r.shared_fraction > 0.0));
    assert!(
        report
            .iter()
            .all(|r| r.max_features_per_pixel >= 1 && r.mean_features_per_pixel >= 1.0)
    );
}
