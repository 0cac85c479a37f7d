//! Benchmarks of the stages at sizes users meet: a 300-sample cohort with 3,000 features.
//!
//! `cargo bench --bench stages` prints criterion's table; compare runs made on the same machine.
//! The larger sizes of the layout targets (5,000 and 20,000 features) are timed by
//! `deepinsight bench layout`, which also prints peak memory.

use criterion::{Criterion, criterion_group, criterion_main};
use deepinsight::PipelineConfig;
use deepinsight::config::{ChannelMode, Collisions, EmbedMethod, LayoutSettings};
use deepinsight::layout::Layout;
use deepinsight::omics::{Cohort, Modality};
use deepinsight::render::RenderPlan;
use deepinsight::select::FeatureSpace;
use deepinsight::serve::PredictRequest;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

fn cohort(samples: usize, features: usize) -> Cohort {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    Cohort {
        sample_ids: (0..samples).map(|i| format!("S{i}")).collect(),
        labels: (0..samples).map(|i| i % 3).collect(),
        classes: vec!["a".into(), "b".into(), "c".into()],
        modalities: vec![Modality {
            name: "m".into(),
            feature_names: (0..features).map(|j| format!("f{j}")).collect(),
            values: Array2::from_shape_fn((samples, features), |_| rng.random_range(0.0f32..100.0)),
        }],
        dropped: vec![],
    }
}

fn stages(c: &mut Criterion) {
    let config = PipelineConfig::from_toml(
        "name = \"b\"\n[select]\ntop_k = 1000\n[data]\nlabels = \"l\"\n[data.modalities]\nm = \"m\"\n",
    )
    .unwrap();
    let data = cohort(300, 3000);
    let train: Vec<usize> = (0..240).collect();
    c.bench_function("select: fit 300 x 3000 -> 1000", |b| {
        b.iter(|| {
            FeatureSpace::fit(black_box(&data), &train, &config.select, &config.normalise).unwrap()
        })
    });
    let space = FeatureSpace::fit(&data, &train, &config.select, &config.normalise).unwrap();
    let values = space.transform(&data).unwrap();
    let groups = vec![("m".to_string(), (0..1000).collect::<Vec<_>>())];
    let pca = LayoutSettings {
        method: EmbedMethod::Pca,
        mode: ChannelMode::Shared,
        ..LayoutSettings::default()
    };
    c.bench_function("layout: PCA fit 1000 features, 224x224", |b| {
        b.iter(|| {
            Layout::fit(
                black_box(values.view()),
                &groups,
                &space.feature_list(),
                &pca,
                1,
            )
            .unwrap()
        })
    });
    let tsne = LayoutSettings {
        method: EmbedMethod::Tsne,
        ..pca.clone()
    };
    c.bench_function("layout: t-SNE fit 1000 features, 224x224", |b| {
        b.iter(|| {
            Layout::fit(
                black_box(values.view()),
                &groups,
                &space.feature_list(),
                &tsne,
                1,
            )
            .unwrap()
        })
    });
    let assign = LayoutSettings {
        collisions: Collisions::Assign,
        ..pca.clone()
    };
    c.bench_function("layout: PCA + assign 1000 features, 224x224", |b| {
        b.iter(|| {
            Layout::fit(
                black_box(values.view()),
                &groups,
                &space.feature_list(),
                &assign,
                1,
            )
            .unwrap()
        })
    });
    let layout = Layout::fit(values.view(), &groups, &space.feature_list(), &pca, 1).unwrap();
    let plan = RenderPlan::new(&layout);
    c.bench_function("render: 300 samples, 1000 features, 224x224", |b| {
        b.iter(|| plan.render_batch(black_box(values.view())).unwrap())
    });
    let mut one = vec![0.0; plan.image_len()];
    c.bench_function("render: 1 sample, 1000 features, 224x224", |b| {
        b.iter(|| plan.render_into(black_box(values.row(0)), &mut one))
    });
}

/// The text of a /predict request for one sample of 3,000 features by name, as a client
/// sends a whole table row: what the server parses per request before any model runs.
fn predict_body() -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let modality = |prefix: &str, n: usize, rng: &mut ChaCha8Rng| {
        let values: Vec<String> = (1..=n)
            .map(|j| {
                format!(
                    "\"{prefix}{j:04}\": {:.3}",
                    rng.random_range(0.0f64..5000.0)
                )
            })
            .collect();
        format!("{{{}}}", values.join(", "))
    };
    let genomics = modality("G", 2000, &mut rng);
    let proteomics = modality("P", 500, &mut rng);
    let metabolomics = modality("M", 300, &mut rng);
    let microbiome = modality("T", 200, &mut rng);
    format!(
        "{{\"samples\": [{{\"id\": \"s0\", \"values\": {{\"genomics\": {genomics}, \
         \"proteomics\": {proteomics}, \"metabolomics\": {metabolomics}, \
         \"microbiome\": {microbiome}}}}}], \"ignore_unknown\": true}}"
    )
}

fn serving(c: &mut Criterion) {
    let body = predict_body();
    c.bench_function(
        "serve: parse a /predict body, 1 sample x 3000 features",
        |b| {
            b.iter(|| {
                let request: PredictRequest =
                    deepinsight::serve::parse_json(black_box(body.as_bytes())).unwrap();
                black_box(request.samples.len())
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = stages, serving
}
criterion_main!(benches);
