//! The bundled synthetic cohort: four omics modalities, labels and pathways, generated
//! exactly from a seed.
//!
//! Every sample has an activity per pathway and a few global factors (batch, sex-like
//! effects). A feature that belongs to a pathway follows that pathway's activity, which gives
//! the tables blocks of correlated features, as real omics data have. The class signal is a
//! shift of the activity of four pathways ("signal pathways") whose members span all four
//! modalities; everything else is noise.

pub mod write;

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
struct Feature {
    pathway: Option<usize>,
    loading: f64,
    sign: f64,
    global: [f64; 3],
}

pub fn generate(spec: &SynthSpec, seed: u64) -> SynthCohort {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = spec.samples;
    let sample_ids: Vec<String> = (1..=n).map(|i| format!("S{i:04}")).collect();
    let mut labels: Vec<&'static str> = (0..n).map(|i| CLASSES[i % CLASSES.len()]).collect();
    labels.shuffle(&mut rng);
    let class_of = |label: &str| {
        CLASSES
            .iter()
            .position(|c| *c == label)
            .expect("known class")
    };

    let mut pathway_ids: Vec<usize> = (0..spec.pathways).collect();
    pathway_ids.shuffle(&mut rng);
    let mut signal_pathways: Vec<usize> = pathway_ids[..4.min(spec.pathways)].to_vec();
    signal_pathways.sort_unstable();

    let normal: Normal<f64> = Normal::new(0.0, 1.0).expect("valid normal");
    let activity: Vec<Vec<f64>> = (0..n)
        .map(|s| {
            let class = class_of(labels[s]);
            (0..spec.pathways)
                .map(|p| {
                    let shift = signal_pathways
                        .iter()
                        .position(|&q| q == p)
                        .map_or(0.0, |k| EFFECTS[class][k]);
                    normal.sample(&mut rng) + shift
                })
                .collect()
        })
        .collect();
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

    // Latent value z (unit variance) of a feature for one sample.
    let latent = |f: &Feature, s: usize, rng: &mut ChaCha8Rng| -> f64 {
        let g: f64 = f.global.iter().zip(&globals[s]).map(|(b, x)| b * x).sum();
        let noise: f64 = rng.sample(StandardNormal);
        match f.pathway {
            Some(p) => f.sign * f.loading * activity[s][p] + 0.3 * g + 0.7 * noise,
            None => 0.4 * g + 0.9 * noise,
        }
    };

    let modalities: [(&'static str, &str, usize, f64); 4] = [
        ("genomics", "G", spec.genes, 0.6),
        ("proteomics", "P", spec.proteins, 0.6),
        ("metabolomics", "M", spec.metabolites, 0.5),
        ("microbiome", "T", spec.taxa, 0.4),
    ];
    let mut tables = Vec::new();
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
        let z: Vec<Vec<f64>> = (0..n)
            .map(|s| features.iter().map(|f| latent(f, s, &mut rng)).collect())
            .collect();
        let values = match modality {
            "genomics" => genomics(&z, &mut rng),
            "proteomics" => intensities(&z, &mut rng),
            "metabolomics" => concentrations(&z, &mut rng),
            _ => abundances(&z, &mut rng),
        };
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
    SynthCohort {
        tables,
        sample_ids,
        labels,
        pathways,
        signal_pathways,
    }
}

/// Read counts: log-normal around a per-gene mean; a few genes are not expressed at all.
fn genomics(z: &[Vec<f64>], rng: &mut ChaCha8Rng) -> Values {
    let genes = z[0].len();
    let means: Vec<f64> = (0..genes)
        .map(|j| {
            if j % 400 == 399 {
                -8.0
            } else {
                5.0 + 1.5 * rng.sample::<f64, _>(StandardNormal)
            }
        })
        .collect();
    Values::Counts(
        z.iter()
            .map(|row| {
                row.iter()
                    .zip(&means)
                    .map(|(v, m)| (m + 0.6 * v).exp().round().min(1e7) as i32)
                    .collect()
            })
            .collect(),
    )
}

/// log2 protein intensities with 3% of values missing.
fn intensities(z: &[Vec<f64>], rng: &mut ChaCha8Rng) -> Values {
    let means: Vec<f64> = (0..z[0].len())
        .map(|_| 22.0 + 1.5 * rng.sample::<f64, _>(StandardNormal))
        .collect();
    Values::Floats(
        z.iter()
            .map(|row| {
                row.iter()
                    .zip(&means)
                    .map(|(v, m)| {
                        let missing = rng.random::<f64>() < 0.03;
                        (!missing).then(|| round_to((m + 0.8 * v) as f32, 100.0))
                    })
                    .collect()
            })
            .collect(),
    )
}

/// Metabolite concentrations (log-normal, 4 significant digits) with 1.5% missing.
fn concentrations(z: &[Vec<f64>], rng: &mut ChaCha8Rng) -> Values {
    let means: Vec<f64> = (0..z[0].len())
        .map(|_| 1.0 + rng.sample::<f64, _>(StandardNormal))
        .collect();
    Values::Floats(
        z.iter()
            .map(|row| {
                row.iter()
                    .zip(&means)
                    .map(|(v, m)| {
                        let missing = rng.random::<f64>() < 0.015;
                        (!missing).then(|| significant((m + 0.7 * v).exp(), 4) as f32)
                    })
                    .collect()
            })
            .collect(),
    )
}

/// Relative abundances: each taxon present in a fraction of samples, rows summing to 1.
fn abundances(z: &[Vec<f64>], rng: &mut ChaCha8Rng) -> Values {
    let taxa = z[0].len();
    let means: Vec<f64> = (0..taxa)
        .map(|_| 2.0 * rng.sample::<f64, _>(StandardNormal))
        .collect();
    let prevalence: Vec<f64> = (0..taxa).map(|_| rng.random_range(0.2..0.9)).collect();
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
