//! Back through the layout: pixel scores become feature scores (every feature takes the score
//! of the pixel it was placed on), aggregated per class, ranked, and summed up per pathway.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use polars::prelude::{Column, DataFrame, IntoLazy, SortMultipleOptions};

use super::cam::{Maps, read};
use crate::layout::Layout;
use crate::mapping::{self, SEPARATOR};
use crate::select::FeatureSpace;

/// Mean and max of the maps of the images explained for each class.
#[derive(Debug, Clone)]
pub struct ClassMaps {
    /// Per class, a map of `shape`; all zero for a class with no image.
    pub mean: Vec<Vec<f32>>,
    pub max: Vec<Vec<f32>>,
    /// Images per class.
    pub count: Vec<usize>,
    pub shape: [usize; 3],
}

impl ClassMaps {
    /// `classes[i]` is the class image i was explained for.
    pub fn new(maps: &Maps, classes: &[usize], n_classes: usize) -> Self {
        let len = maps.map_len();
        let mut sum = vec![vec![0.0f64; len]; n_classes];
        let mut max = vec![vec![0.0f32; len]; n_classes];
        let mut count = vec![0usize; n_classes];
        for (i, &k) in classes.iter().enumerate() {
            count[k] += 1;
            for ((s, m), &v) in sum[k].iter_mut().zip(&mut max[k]).zip(maps.map(i)) {
                *s += f64::from(v);
                *m = m.max(v);
            }
        }
        let mean = sum
            .into_iter()
            .zip(&count)
            .map(|(s, &n)| {
                s.into_iter()
                    .map(|v| (v / n.max(1) as f64) as f32)
                    .collect()
            })
            .collect();
        Self {
            mean,
            max,
            count,
            shape: maps.shape,
        }
    }
}

/// Scores of one placed feature: per class, the class maps' mean and max at its pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureScore {
    /// Column in the feature vector.
    pub column: usize,
    pub channel: usize,
    pub row: u32,
    pub pixel_column: u32,
    pub mean: Vec<f32>,
    pub max: Vec<f32>,
    /// The largest class mean over classes with images: the ranking score.
    pub score: f32,
}

/// One score per placed feature, in the layout's channel then placement order (the order of
/// `mapping::mapping_table`).
pub fn feature_scores(layout: &Layout, maps: &ClassMaps) -> Vec<FeatureScore> {
    let mut out = Vec::new();
    for (c, channel) in layout.channels.iter().enumerate() {
        for (&f, &[row, column]) in channel.features.iter().zip(&channel.pixels) {
            let pick = |per_class: &[Vec<f32>]| -> Vec<f32> {
                per_class
                    .iter()
                    .map(|m| read(m, maps.shape, c, row as usize, column as usize))
                    .collect()
            };
            let mean = pick(&maps.mean);
            let score = mean
                .iter()
                .zip(&maps.count)
                .filter(|&(_, &n)| n > 0)
                .map(|(&v, _)| v)
                .fold(0.0f32, f32::max);
            out.push(FeatureScore {
                column: f,
                channel: c,
                row,
                pixel_column: column,
                max: pick(&maps.max),
                mean,
                score,
            });
        }
    }
    out
}

/// The ranked feature table: the mapping table's columns (feature, modality, pathways, block,
/// channel, channel_index, row, column), then `mean_<class>` and `max_<class>` per class,
/// `score`, `normalised` (score / the best score), `rank` (1 = best) and `selected`
/// (normalised >= `threshold`, as pyDeepInsight's CAMFeatureSelector keeps features). Best
/// first. `pathways_of`, when given, replaces the pathways column (gene sets given to explain).
pub fn feature_table(
    layout: &Layout,
    space: &FeatureSpace,
    scores: &[FeatureScore],
    classes: &[String],
    threshold: f32,
    pathways_of: Option<&HashMap<String, Vec<String>>>,
) -> Result<DataFrame> {
    let mut table = mapping::mapping_table(layout, space)?;
    if let Some(sets) = pathways_of {
        let names = table.column("feature")?.str()?.clone();
        let joined: Vec<String> = names
            .iter()
            .map(|n| {
                n.and_then(|n| sets.get(n))
                    .map(|s| s.join(SEPARATOR))
                    .unwrap_or_default()
            })
            .collect();
        table.with_column(Column::new("pathways".into(), joined))?;
    }
    for (k, class) in classes.iter().enumerate() {
        let mean: Vec<f32> = scores.iter().map(|s| s.mean[k]).collect();
        let max: Vec<f32> = scores.iter().map(|s| s.max[k]).collect();
        table.with_column(Column::new(format!("mean_{class}").into(), mean))?;
        table.with_column(Column::new(format!("max_{class}").into(), max))?;
    }
    let best = scores.iter().map(|s| s.score).fold(0.0f32, f32::max);
    let normalised: Vec<f32> = scores
        .iter()
        .map(|s| if best > 0.0 { s.score / best } else { 0.0 })
        .collect();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].score.total_cmp(&scores[a].score).then(a.cmp(&b)));
    let mut rank = vec![0u32; scores.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r as u32 + 1;
    }
    table.with_column(Column::new(
        "score".into(),
        scores.iter().map(|s| s.score).collect::<Vec<_>>(),
    ))?;
    table.with_column(Column::new(
        "selected".into(),
        normalised
            .iter()
            .map(|&v| v >= threshold)
            .collect::<Vec<_>>(),
    ))?;
    table.with_column(Column::new("normalised".into(), normalised))?;
    table.with_column(Column::new("rank".into(), rank))?;
    Ok(table
        .lazy()
        .sort(["rank"], SortMultipleOptions::default())
        .collect()?)
}

/// Per pathway of the feature table's `pathways` column: features, their mean and max
/// `score`, the mean of each class's `mean_<class>`, and the best rank among them. Best mean
/// score first. `None` when no feature has a pathway.
pub fn pathway_table(features: &DataFrame, classes: &[String]) -> Result<Option<DataFrame>> {
    let pathways = features.column("pathways")?.str()?.clone();
    let score = features.column("score")?.f32()?.clone();
    let rank = features.column("rank")?.u32()?.clone();
    let class_means: Vec<_> = classes
        .iter()
        .map(|c| Ok(features.column(&format!("mean_{c}"))?.f32()?.clone()))
        .collect::<Result<_>>()?;
    #[derive(Default)]
    struct Acc {
        n: u32,
        sum: f64,
        max: f32,
        best_rank: u32,
        class_sum: Vec<f64>,
    }
    let mut groups: BTreeMap<String, Acc> = BTreeMap::new();
    for i in 0..features.height() {
        let Some(list) = pathways.get(i) else {
            continue;
        };
        for name in list.split(SEPARATOR).filter(|s| !s.is_empty()) {
            let acc = groups.entry(name.to_string()).or_insert_with(|| Acc {
                best_rank: u32::MAX,
                class_sum: vec![0.0; classes.len()],
                ..Acc::default()
            });
            let s = score.get(i).unwrap_or(0.0);
            acc.n += 1;
            acc.sum += f64::from(s);
            acc.max = acc.max.max(s);
            acc.best_rank = acc.best_rank.min(rank.get(i).unwrap_or(u32::MAX));
            for (k, m) in class_means.iter().enumerate() {
                acc.class_sum[k] += f64::from(m.get(i).unwrap_or(0.0));
            }
        }
    }
    if groups.is_empty() {
        return Ok(None);
    }
    let mut columns = vec![
        Column::new("pathway".into(), groups.keys().cloned().collect::<Vec<_>>()),
        Column::new(
            "features".into(),
            groups.values().map(|a| a.n).collect::<Vec<_>>(),
        ),
        Column::new(
            "mean_score".into(),
            groups
                .values()
                .map(|a| (a.sum / f64::from(a.n)) as f32)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "max_score".into(),
            groups.values().map(|a| a.max).collect::<Vec<_>>(),
        ),
        Column::new(
            "best_rank".into(),
            groups.values().map(|a| a.best_rank).collect::<Vec<_>>(),
        ),
    ];
    for (k, class) in classes.iter().enumerate() {
        columns.push(Column::new(
            format!("mean_{class}").into(),
            groups
                .values()
                .map(|a| (a.class_sum[k] / f64::from(a.n)) as f32)
                .collect::<Vec<_>>(),
        ));
    }
    let table = DataFrame::new_infer_height(columns)?;
    Ok(Some(
        table
            .lazy()
            .sort(
                ["mean_score"],
                SortMultipleOptions::default().with_order_descending(true),
            )
            .collect()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{test_channel as channel, test_layout};
    use crate::omics::normalise::Normaliser;
    use crate::select::SelectedModality;

    fn layout() -> Layout {
        test_layout(
            2,
            2,
            vec![
                channel("x", vec![0, 1], vec![[0, 0], [1, 1]]),
                channel("y", vec![2], vec![[0, 1]]),
            ],
        )
    }

    fn space() -> FeatureSpace {
        let modality = |name: &str, features: &[&str]| SelectedModality {
            name: name.into(),
            features: features.iter().map(|f| f.to_string()).collect(),
            normaliser: Normaliser::fit(
                Default::default(),
                ndarray::Array2::<f32>::zeros((2, features.len())).view(),
                vec![0.0; features.len()],
            ),
            dropped_constant: 0,
        };
        FeatureSpace {
            modalities: vec![modality("x", &["f0", "f1"]), modality("y", &["g0"])],
            pathways: None,
        }
    }

    #[test]
    fn class_maps_average_and_max_each_class_and_features_read_their_pixel() {
        // Three saliency maps (2 channels x 2 x 2): two of class 0, one of class 1.
        let maps = Maps {
            values: vec![
                1.0, 0.0, 0.0, 0.5, /**/ 0.0, 0.2, 0.0, 0.0, // image 0, class 0
                0.0, 0.0, 0.0, 1.0, /**/ 0.0, 0.6, 0.0, 0.0, // image 1, class 0
                0.0, 0.0, 0.0, 0.0, /**/ 0.0, 1.0, 0.0, 0.0, // image 2, class 1
            ],
            shape: [2, 2, 2],
            probabilities: Vec::new(),
            targets: Vec::new(),
        };
        let class_maps = ClassMaps::new(&maps, &[0, 0, 1], 3);
        assert_eq!(class_maps.count, [2, 1, 0]);
        assert_eq!(
            class_maps.mean[0],
            [0.5, 0.0, 0.0, 0.75, 0.0, 0.4, 0.0, 0.0]
        );
        assert_eq!(class_maps.max[0], [1.0, 0.0, 0.0, 1.0, 0.0, 0.6, 0.0, 0.0]);
        assert_eq!(class_maps.mean[2], [0.0; 8]);

        let scores = feature_scores(&layout(), &class_maps);
        // f0 at (x, 0, 0), f1 at (x, 1, 1), g0 at (y, 0, 1).
        assert_eq!(
            scores.iter().map(|s| s.column).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(scores[0].mean, [0.5, 0.0, 0.0]);
        assert_eq!(scores[1].mean, [0.75, 0.0, 0.0]);
        assert_eq!(scores[2].mean, [0.4, 1.0, 0.0]);
        assert_eq!(scores[2].max, [0.6, 1.0, 0.0]);
        // The score is the best class mean among classes with images.
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            [0.5, 0.75, 1.0]
        );

        let classes = ["a".to_string(), "b".to_string(), "c".to_string()];
        let mut sets = HashMap::new();
        sets.insert("f1".to_string(), vec!["P1".to_string(), "P2".to_string()]);
        sets.insert("g0".to_string(), vec!["P1".to_string()]);
        let table =
            feature_table(&layout(), &space(), &scores, &classes, 0.6, Some(&sets)).unwrap();
        let col = |name: &str| -> Vec<String> {
            table
                .column(name)
                .unwrap()
                .cast(&polars::prelude::DataType::String)
                .unwrap()
                .str()
                .unwrap()
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(col("feature"), ["g0", "f1", "f0"]);
        assert_eq!(col("rank"), ["1", "2", "3"]);
        assert_eq!(col("selected"), ["true", "true", "false"]);
        assert_eq!(col("pathways"), ["P1", "P1;P2", ""]);
        assert_eq!(col("mean_b"), ["1.0", "0.0", "0.0"]);

        let pathways = pathway_table(&table, &classes).unwrap().unwrap();
        let names: Vec<String> = pathways
            .column("pathway")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect();
        assert_eq!(names, ["P1", "P2"]);
        let mean = pathways
            .column("mean_score")
            .unwrap()
            .f32()
            .unwrap()
            .clone();
        assert_eq!(mean.get(0), Some(0.875));
        assert_eq!(mean.get(1), Some(0.75));
    }
}
