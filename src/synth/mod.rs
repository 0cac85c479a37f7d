//! The bundled synthetic cohort: four omics modalities, labels and pathways, generated
//! exactly from a seed.
//!
//! Every sample has an activity per pathway and a few global factors (batch, sex-like
//! effects). A feature that belongs to a pathway follows that pathway's activity, which gives
//! the tables blocks of correlated features, as real omics data have. The class signal is a
//! shift of the activity of four pathways ("signal pathways") whose members span all four
//! modalities; everything else is noise.

pub(crate) mod write;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};

pub use write::write_cohort;

pub const CLASSES: [&str; 3] = ["healthy", "subtype_A", "subtype_B"];

/// Sizes of the generated cohort.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    pub samples: usize,
    pub genes: usize,
    pub proteins: usize,
    pub metabolites: usize,
    pub taxa: usize,
    pub pathways: usize,
    /// Samples left out of the metabolomics and microbiome tables (to exercise alignment).
    pub missing_metabolomics: usize,
    pub missing_microbiome: usize,
}

impl Default for SynthSpec {
    fn default() -> Self {
        Self {
            samples: 300,
            genes: 2000,
            proteins: 500,
            metabolites: 300,
            taxa: 200,
            pathways: 40,
            missing_metabolomics: 4,
            missing_microbiome: 3,
        }
    }
}

/// Values of one modality: samples x features, `None` = missing.
pub enum Values {
    Counts(Vec<Vec<i32>>),
    Floats(Vec<Vec<Option<f32>>>),
    Fractions(Vec<Vec<f64>>),
}

pub struct SynthTable {
    pub modality: &'static str,
    pub sample_ids: Vec<String>,
    pub feature_names: Vec<String>,
    pub values: Values,
}

#[derive(Clone)]
pub struct Pathway {
    pub name: String,
    pub description: String,
    pub members: Vec<String>,
}

pub struct SynthCohort {
    pub tables: Vec<SynthTable>,
    pub sample_ids: Vec<String>,
    pub labels: Vec<&'static str>,
    pub pathways: Vec<Pathway>,
    /// Indices of the pathways that carry the class signal.
    pub signal_pathways: Vec<usize>,
}

/// Shift of each signal pathway's activity per class, in standard deviations.
const EFFECTS: [[f64; 4]; 3] = [
    [0.0, 0.0, 0.0, 0.0],
    [1.5, 0.0, -1.2, 1.0],
    [0.0, 1.5, 1.2, -1.0],
];

/// A feature's place in the latent model.
#[derive(Clone)]
struct Feature {
    pathway: Option<usize>,
    loading: f64,
    sign: f64,
    global: [f64; 3],
}

/// How one modality turns latent values into measurements: per-feature parameters drawn once.
#[derive(Clone)]
enum ValueModel {
    Counts {
        means: Vec<f64>,
    },
    Intensities {
        means: Vec<f64>,
    },
    Concentrations {
        means: Vec<f64>,
    },
    Abundances {
        means: Vec<f64>,
        prevalence: Vec<f64>,
    },
}

/// Everything about a cohort that is not a sample: the biology a second cohort shares.
struct Structure {
    signal_pathways: Vec<usize>,
    pathways: Vec<Pathway>,
    /// Per modality: name, feature names, features and value model.
    modalities: Vec<(&'static str, Vec<String>, Vec<Feature>, ValueModel)>,
}

pub fn generate(spec: &SynthSpec, seed: u64) -> SynthCohort {
    generate_with_structure(spec, seed).0
}

/// A second cohort of `samples` new patients from the same study as `generate(spec, seed)`:
/// the same features, pathways, loadings and class signal, new samples drawn from
/// `cohort_seed`. Sample ids are `N0001`...; no sample is left out of any table.
pub fn generate_new_cohort(
    spec: &SynthSpec,
    seed: u64,
    cohort_seed: u64,
    samples: usize,
) -> SynthCohort {
    let structure = generate_with_structure(spec, seed).1;
    let mut rng = ChaCha8Rng::seed_from_u64(cohort_seed);
    let sample_ids: Vec<String> = (1..=samples).map(|i| format!("N{i:04}")).collect();
    let (labels, activity, globals) =
        draw_samples(samples, spec.pathways, &structure.signal_pathways, &mut rng);
    let mut tables = Vec::new();
    for (modality, names, features, model) in &structure.modalities {
        let z = latents(features, &activity, &globals, &mut rng);
        let mut table = SynthTable {
            modality,
            sample_ids: sample_ids.clone(),
            feature_names: names.clone(),
            values: measure(model, &z, &mut rng),
        };
        shuffle_rows(&mut table, &mut rng);
        tables.push(table);
    }
    SynthCohort {
        tables,
        sample_ids,
        labels,
        pathways: structure.pathways,
        signal_pathways: structure.signal_pathways,
    }
}

/// Labels (balanced, shuffled), pathway activities (shifted for the signal pathways by class)
/// and global factors of `n` samples.
fn draw_samples(
    n: usize,
    pathways: usize,
    signal_pathways: &[usize],
    rng: &mut ChaCha8Rng,
) -> (Vec<&'static str>, Vec<Vec<f64>>, Vec<[f64; 3]>) {
    let normal: Normal<f64> = Normal::new(0.0, 1.0).expect("valid normal");
    let mut labels: Vec<&'static str> = (0..n).map(|i| CLASSES[i % CLASSES.len()]).collect();
    labels.shuffle(rng);
    let activity = activities(&labels, pathways, signal_pathways, rng);
    let globals: Vec<[f64; 3]> = (0..n)
        .map(|_| std::array::from_fn(|_| normal.sample(rng)))
        .collect();
    (labels, activity, globals)
}

fn activities(
    labels: &[&str],
    pathways: usize,
    signal_pathways: &[usize],
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<f64>> {
    let normal: Normal<f64> = Normal::new(0.0, 1.0).expect("valid normal");
    labels
        .iter()
        .map(|label| {
            let class = CLASSES
                .iter()
                .position(|c| c == label)
                .expect("known class");
            (0..pathways)
                .map(|p| {
                    let shift = signal_pathways
                        .iter()
                        .position(|&q| q == p)
                        .map_or(0.0, |k| EFFECTS[class][k]);
                    normal.sample(rng) + shift
                })
                .collect()
        })
        .collect()
}

/// Latent value z (unit variance) of a feature for one sample.
fn latent(f: &Feature, activity: &[f64], globals: &[f64; 3], rng: &mut ChaCha8Rng) -> f64 {
    let g: f64 = f.global.iter().zip(globals).map(|(b, x)| b * x).sum();
    let noise: f64 = rng.sample(StandardNormal);
    match f.pathway {
        Some(p) => f.sign * f.loading * activity[p] + 0.3 * g + 0.7 * noise,
        None => 0.4 * g + 0.9 * noise,
    }
}

/// Latent values of every sample (rows) for `features` (columns).
fn latents(
    features: &[Feature],
    activity: &[Vec<f64>],
    globals: &[[f64; 3]],
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<f64>> {
    activity
        .iter()
        .zip(globals)
        .map(|(a, g)| features.iter().map(|f| latent(f, a, g, rng)).collect())
        .collect()
}

fn measure(model: &ValueModel, z: &[Vec<f64>], rng: &mut ChaCha8Rng) -> Values {
    match model {
        ValueModel::Counts { means } => genomics(z, means),
        ValueModel::Intensities { means } => intensities(z, means, rng),
        ValueModel::Concentrations { means } => concentrations(z, means, rng),
        ValueModel::Abundances { means, prevalence } => abundances(z, means, prevalence, rng),
    }
}

/// The value model of a modality, drawn as the original generator drew it.
fn value_model(modality: &str, features: usize, rng: &mut ChaCha8Rng) -> ValueModel {
    let normal = |rng: &mut ChaCha8Rng| rng.sample::<f64, _>(StandardNormal);
    match modality {
        "genomics" => ValueModel::Counts {
            means: (0..features)
                .map(|j| {
                    if j % 400 == 399 {
                        -8.0
                    } else {
                        5.0 + 1.5 * normal(rng)
                    }
                })
                .collect(),
        },
        "proteomics" => ValueModel::Intensities {
            means: (0..features).map(|_| 22.0 + 1.5 * normal(rng)).collect(),
        },
        "metabolomics" => ValueModel::Concentrations {
            means: (0..features).map(|_| 1.0 + normal(rng)).collect(),
        },
        _ => {
            let means = (0..features).map(|_| 2.0 * normal(rng)).collect();
            let prevalence = (0..features).map(|_| rng.random_range(0.2..0.9)).collect();
            ValueModel::Abundances { means, prevalence }
        }
    }
}

fn generate_with_structure(spec: &SynthSpec, seed: u64) -> (SynthCohort, Structure) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = spec.samples;
    let sample_ids: Vec<String> = (1..=n).map(|i| format!("S{i:04}")).collect();
    let mut labels: Vec<&'static str> = (0..n).map(|i| CLASSES[i % CLASSES.len()]).collect();
    labels.shuffle(&mut rng);
    let mut pathway_ids: Vec<usize> = (0..spec.pathways).collect();
    pathway_ids.shuffle(&mut rng);
    let mut signal_pathways: Vec<usize> = pathway_ids[..4.min(spec.pathways)].to_vec();
    signal_pathways.sort_unstable();

    let activity = activities(&labels, spec.pathways, &signal_pathways, &mut rng);
    let normal: Normal<f64> = Normal::new(0.0, 1.0).expect("valid normal");
    let globals: Vec<[f64; 3]> = (0..n)
        .map(|_| std::array::from_fn(|_| normal.sample(&mut rng)))
        .collect();

    let mut pathways: Vec<Pathway> = (0..spec.pathways)
        .map(|p| Pathway {
            name: format!("PATHWAY_{:02}", p + 1),
            description: format!("synthetic_pathway_{}", p + 1),
            members: Vec::new(),
        })
        .collect();

    let modalities: [(&'static str, &str, usize, f64); 4] = [
        ("genomics", "G", spec.genes, 0.6),
        ("proteomics", "P", spec.proteins, 0.6),
        ("metabolomics", "M", spec.metabolites, 0.5),
        ("microbiome", "T", spec.taxa, 0.4),
    ];
    let mut tables = Vec::new();
    let mut recorded = Vec::new();
    for (modality, prefix, count, in_pathway) in modalities {
        let names: Vec<String> = (1..=count).map(|j| format!("{prefix}{j:04}")).collect();
        let features: Vec<Feature> = names
            .iter()
            .map(|name| {
                let pathway =
                    (rng.random::<f64>() < in_pathway).then(|| rng.random_range(0..spec.pathways));
                if let Some(p) = pathway {
                    pathways[p].members.push(name.clone());
                    // Some features also sit in a second pathway, as genes do in MSigDB.
                    if rng.random::<f64>() < 0.1 {
                        let q = rng.random_range(0..spec.pathways);
                        if q != p {
                            pathways[q].members.push(name.clone());
                        }
                    }
                }
                Feature {
                    pathway,
                    loading: rng.random_range(0.6..1.0),
                    sign: if rng.random::<f64>() < 0.8 { 1.0 } else { -1.0 },
                    global: std::array::from_fn(|_| rng.random_range(-0.5..0.5)),
                }
            })
            .collect();
        let z = latents(&features, &activity, &globals, &mut rng);
        let model = value_model(modality, count, &mut rng);
        let values = measure(&model, &z, &mut rng);
        recorded.push((modality, names.clone(), features, model));
        tables.push(SynthTable {
            modality,
            sample_ids: sample_ids.clone(),
            feature_names: names,
            values,
        });
    }
    drop_samples(&mut tables[2], spec.missing_metabolomics, &mut rng);
    drop_samples(&mut tables[3], spec.missing_microbiome, &mut rng);
    for table in &mut tables {
        shuffle_rows(table, &mut rng);
    }
    for p in &mut pathways {
        p.members.sort();
        p.members.dedup();
    }
    let structure = Structure {
        signal_pathways: signal_pathways.clone(),
        pathways: pathways.clone(),
        modalities: recorded,
    };
    let cohort = SynthCohort {
        tables,
        sample_ids,
        labels,
        pathways,
        signal_pathways,
    };
    (cohort, structure)
}

/// Read counts: log-normal around a per-gene mean; a few genes are not expressed at all.
fn genomics(z: &[Vec<f64>], means: &[f64]) -> Values {
    Values::Counts(
        z.iter()
            .map(|row| {
                row.iter()
                    .zip(means)
                    .map(|(v, m)| (m + 0.6 * v).exp().round().min(1e7) as i32)
                    .collect()
            })
            .collect(),
    )
}

/// log2 protein intensities with 3% of values missing.
fn intensities(z: &[Vec<f64>], means: &[f64], rng: &mut ChaCha8Rng) -> Values {
    floats_with_missing(z, means, 0.03, rng, |v, m| {
        round_to((m + 0.8 * v) as f32, 100.0)
    })
}

/// Metabolite concentrations (log-normal, 4 significant digits) with 1.5% missing.
fn concentrations(z: &[Vec<f64>], means: &[f64], rng: &mut ChaCha8Rng) -> Values {
    floats_with_missing(z, means, 0.015, rng, |v, m| {
        significant((m + 0.7 * v).exp(), 4) as f32
    })
}

/// `value(latent, mean)` for each cell, a share `missing` of them left out. One draw per cell,
/// before the value, in row order: the bundled data depend on that order.
fn floats_with_missing(
    z: &[Vec<f64>],
    means: &[f64],
    missing: f64,
    rng: &mut ChaCha8Rng,
    value: impl Fn(f64, f64) -> f32,
) -> Values {
    Values::Floats(
        z.iter()
            .map(|row| {
                row.iter()
                    .zip(means)
                    .map(|(&v, &m)| (rng.random::<f64>() >= missing).then(|| value(v, m)))
                    .collect()
            })
            .collect(),
    )
}

/// Relative abundances: each taxon present in a fraction of samples, rows summing to 1.
fn abundances(z: &[Vec<f64>], means: &[f64], prevalence: &[f64], rng: &mut ChaCha8Rng) -> Values {
    Values::Fractions(
        z.iter()
            .map(|row| {
                let raw: Vec<f64> = row
                    .iter()
                    .enumerate()
                    .map(|(j, v)| {
                        // Pathway activity also moves presence, as blooms do.
                        let present =
                            rng.random::<f64>() < (prevalence[j] + 0.1 * v).clamp(0.05, 0.98);
                        if present { (means[j] + v).exp() } else { 0.0 }
                    })
                    .collect();
                let total: f64 = raw.iter().sum::<f64>().max(f64::MIN_POSITIVE);
                raw.iter().map(|x| significant(x / total, 6)).collect()
            })
            .collect(),
    )
}

fn round_to(x: f32, scale: f32) -> f32 {
    (x * scale).round() / scale
}

fn significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

fn drop_samples(table: &mut SynthTable, count: usize, rng: &mut ChaCha8Rng) {
    let mut rows: Vec<usize> = (0..table.sample_ids.len()).collect();
    rows.shuffle(rng);
    let mut gone: Vec<usize> = rows[..count].to_vec();
    gone.sort_unstable_by(|a, b| b.cmp(a));
    for r in gone {
        table.sample_ids.remove(r);
        match &mut table.values {
            Values::Counts(v) => drop(v.remove(r)),
            Values::Floats(v) => drop(v.remove(r)),
            Values::Fractions(v) => drop(v.remove(r)),
        }
    }
}

/// Real tables are not sorted by sample: the loader must not rely on row order.
fn shuffle_rows(table: &mut SynthTable, rng: &mut ChaCha8Rng) {
    let mut order: Vec<usize> = (0..table.sample_ids.len()).collect();
    order.shuffle(rng);
    table.sample_ids = order.iter().map(|&r| table.sample_ids[r].clone()).collect();
    fn reorder<T: Clone>(v: &mut Vec<T>, order: &[usize]) {
        *v = order.iter().map(|&r| v[r].clone()).collect();
    }
    match &mut table.values {
        Values::Counts(v) => reorder(v, &order),
        Values::Floats(v) => reorder(v, &order),
        Values::Fractions(v) => reorder(v, &order),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthSpec {
        SynthSpec {
            samples: 30,
            genes: 50,
            proteins: 20,
            metabolites: 10,
            taxa: 12,
            pathways: 6,
            missing_metabolomics: 2,
            missing_microbiome: 1,
        }
    }

    /// Per genomics feature: mean log count of subtype_A minus that of healthy.
    fn class_effects(cohort: &SynthCohort) -> Vec<f64> {
        let table = &cohort.tables[0];
        let Values::Counts(rows) = &table.values else {
            panic!("genomics")
        };
        let label: std::collections::HashMap<&str, &str> = cohort
            .sample_ids
            .iter()
            .map(String::as_str)
            .zip(cohort.labels.iter().copied())
            .collect();
        let mean = |class: &str, j: usize| -> f64 {
            let values: Vec<f64> = rows
                .iter()
                .zip(&table.sample_ids)
                .filter(|(_, id)| label[id.as_str()] == class)
                .map(|(r, _)| (f64::from(r[j]) + 1.0).ln())
                .collect();
            values.iter().sum::<f64>() / values.len() as f64
        };
        (0..table.feature_names.len())
            .map(|j| mean("subtype_A", j) - mean("healthy", j))
            .collect()
    }

    fn correlation(a: &[f64], b: &[f64]) -> f64 {
        let (ma, mb) = (
            a.iter().sum::<f64>() / a.len() as f64,
            b.iter().sum::<f64>() / b.len() as f64,
        );
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn a_new_cohort_shares_the_study_but_not_the_samples() {
        let spec = SynthSpec {
            samples: 240,
            genes: 200,
            ..small()
        };
        let first = generate(&spec, 3);
        let second = generate_new_cohort(&spec, 3, 99, 240);
        let other_study = generate(&spec, 4);
        assert_eq!(second.sample_ids[0], "N0001");
        assert_eq!(second.signal_pathways, first.signal_pathways);
        for (a, b) in first.tables.iter().zip(&second.tables) {
            assert_eq!(a.feature_names, b.feature_names);
            assert_eq!(
                b.sample_ids.len(),
                240,
                "no sample left out of {}",
                b.modality
            );
        }
        let members = |c: &SynthCohort| -> Vec<Vec<String>> {
            c.pathways.iter().map(|p| p.members.clone()).collect()
        };
        assert_eq!(members(&first), members(&second));
        // The class signal sits in the same features with the same signs: the per-feature
        // class effects agree between the two cohorts, and not with another study's.
        let same = correlation(&class_effects(&first), &class_effects(&second));
        let other = correlation(&class_effects(&first), &class_effects(&other_study));
        assert!(same > 0.6, "same study: {same}");
        assert!(other.abs() < 0.3, "other study: {other}");
        // New samples: the values differ.
        let (Values::Counts(a), Values::Counts(b)) =
            (&first.tables[0].values, &second.tables[0].values)
        else {
            panic!("genomics")
        };
        assert_ne!(a[0], b[0]);
    }

    #[test]
    fn microbiome_rows_sum_to_one_and_samples_are_dropped() {
        let cohort = generate(&small(), 3);
        let Values::Fractions(rows) = &cohort.tables[3].values else {
            panic!("microbiome")
        };
        for row in rows {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        }
        assert_eq!(cohort.tables[2].sample_ids.len(), 28);
        assert_eq!(cohort.tables[3].sample_ids.len(), 29);
        assert_eq!(cohort.signal_pathways.len(), 4);
    }

    #[test]
    fn signal_pathway_members_differ_between_classes() {
        let spec = SynthSpec {
            samples: 300,
            ..small()
        };
        let cohort = generate(&spec, 11);
        let Values::Floats(rows) = &cohort.tables[1].values else {
            panic!("proteomics")
        };
        let table = &cohort.tables[1];
        // Mean of one signal pathway's proteins per class: the classes must separate.
        let p = cohort.signal_pathways[0];
        let members: Vec<usize> = table
            .feature_names
            .iter()
            .enumerate()
            .filter(|(_, n)| cohort.pathways[p].members.contains(n))
            .map(|(j, _)| j)
            .collect();
        assert!(!members.is_empty());
        let mut class_means = [0.0f64; 3];
        let mut counts = [0usize; 3];
        for (row, id) in rows.iter().zip(&table.sample_ids) {
            let s = cohort.sample_ids.iter().position(|x| x == id).unwrap();
            let c = CLASSES.iter().position(|c| *c == cohort.labels[s]).unwrap();
            for &j in &members {
                if let Some(v) = row[j] {
                    class_means[c] += f64::from(v);
                    counts[c] += 1;
                }
            }
        }
        for c in 0..3 {
            class_means[c] /= counts[c] as f64;
        }
        let spread = class_means.iter().cloned().fold(f64::MIN, f64::max)
            - class_means.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 0.3, "class means {class_means:?}");
    }
}
