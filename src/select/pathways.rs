//! Pathway-grouped selection: gene sets matched to the features of every modality, the best
//! features of each pathway kept, pathways ranked by how informative their kept features are.
//!
//! Rules, in order:
//! 1. A member matches a feature whose name equals it (ignoring case with `case_insensitive`),
//!    or whose other name in the ID-mapping table equals it. Names are matched in every
//!    modality, so a gene set can hold genes, proteins and metabolites at once.
//! 2. A pathway with fewer than `min_members` matched non-constant features is left out.
//! 3. Each pathway's score is the mean score of its `top_k` best features; pathways are ranked
//!    by it (ties by name) and the first `top_pathways` kept.
//! 4. A feature of several kept pathways is placed in the best-ranked one only; the others take
//!    their next-best member instead, so every pathway still shows up to `top_k` features.
//! 5. Features matched by no gene set: the best `unassigned` of them form an "unassigned" group.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail};
use polars::prelude::DataType;
use serde::{Deserialize, Serialize};

use super::gmt::GeneSet;
use super::settings::{FeatureScore, PathwaySettings};
use crate::omics::read_frame;

/// Name of the group of features that belong to no gene set.
pub const UNASSIGNED: &str = "unassigned";

/// One modality's features as the selection sees them.
pub struct Candidates<'a> {
    pub modality: &'a str,
    pub names: &'a [String],
    /// Whether the feature varies on training samples (constant ones are never kept).
    pub usable: Vec<bool>,
    pub score: Vec<f64>,
    pub variance: Vec<f64>,
}

/// A kept feature and the gene sets it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupFeature {
    pub modality: String,
    pub name: String,
    pub score: f64,
    pub variance: f64,
    /// Every gene set of the file that lists the feature, in file order.
    pub pathways: Vec<String>,
}

/// A kept pathway (or the unassigned group) with its features, best first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PathwayGroup {
    pub name: String,
    /// 1 = best; `None` for the unassigned group.
    pub rank: Option<usize>,
    /// Mean score of the pathway's best `top_k` features, before features shared with a
    /// better-ranked pathway moved there.
    pub score: f64,
    /// Members listed in the GMT file.
    pub members: usize,
    /// Non-constant features matched by those members.
    pub matched: usize,
    pub features: Vec<GroupFeature>,
}

/// How well the gene sets cover the data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Coverage {
    pub gene_sets: usize,
    /// Sets none of whose members is a feature (or that list no members).
    pub empty_sets: Vec<String>,
    /// Sets with at least `min_members` matched non-constant features.
    pub sets_with_min_members: usize,
    pub min_members: usize,
    /// Distinct member names that match no feature, and the first few of them.
    pub unknown_members: usize,
    pub unknown_examples: Vec<String>,
    pub modalities: Vec<ModalityCoverage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModalityCoverage {
    pub modality: String,
    pub features: usize,
    /// Features listed by at least one gene set.
    pub in_pathway: usize,
}

/// The outcome of pathway selection: groups in rank order, the unassigned group last.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PathwaySelection {
    pub gmt: String,
    pub score: FeatureScore,
    pub groups: Vec<PathwayGroup>,
    pub coverage: Coverage,
}

/// Finds the features a member names: exact or case-folded names, plus ID-map aliases.
pub struct Matcher {
    fold: bool,
    aliases: HashMap<String, Vec<String>>,
}

impl Matcher {
    pub fn new(config: &PathwaySettings) -> Result<Self> {
        let mut matcher = Self {
            fold: config.case_insensitive,
            aliases: HashMap::new(),
        };
        if let Some(path) = &config.id_map {
            for (a, b) in read_pairs(path, config.id_map_columns.as_ref())? {
                let (a, b) = (matcher.key(&a), matcher.key(&b));
                matcher
                    .aliases
                    .entry(a.clone())
                    .or_default()
                    .push(b.clone());
                matcher.aliases.entry(b).or_default().push(a);
            }
        }
        Ok(matcher)
    }

    fn key(&self, name: &str) -> String {
        if self.fold {
            name.to_lowercase()
        } else {
            name.to_string()
        }
    }

    /// Every name under which a feature may be listed.
    fn keys_of(&self, feature: &str) -> Vec<String> {
        let own = self.key(feature);
        let mut keys = vec![own.clone()];
        if let Some(more) = self.aliases.get(&own) {
            keys.extend(more.iter().cloned());
        }
        keys
    }
}

/// Pairs of names from the first two columns of the table (or the two named ones).
/// The text pairs of two columns of a Parquet, CSV or TSV table (`columns`, or its first two),
/// rows with an empty value left out. Used for ID maps and feature lists.
pub fn read_pairs(path: &Path, columns: Option<&[String; 2]>) -> Result<Vec<(String, String)>> {
    let frame = read_frame(path)?;
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let wanted: [String; 2] = match columns {
        Some(c) => c.clone(),
        None if names.len() >= 2 => [names[0].clone(), names[1].clone()],
        None => bail!(
            "{}: the table needs two columns, found {}",
            path.display(),
            names.len()
        ),
    };
    let mut text = Vec::with_capacity(2);
    for name in &wanted {
        let column = frame.column(name).with_context(|| {
            format!(
                "{}: no column '{name}' (columns: {})",
                path.display(),
                names.join(", ")
            )
        })?;
        text.push(column.cast(&DataType::String)?);
    }
    let (from, to) = (text[0].str()?, text[1].str()?);
    Ok(from
        .iter()
        .zip(to.iter())
        .filter_map(|(a, b)| Some((a?.trim().to_string(), b?.trim().to_string())))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .collect())
}

/// (modality index, column) of a feature.
type FeatureId = (usize, usize);

pub fn select(
    modalities: &[Candidates],
    sets: &[GeneSet],
    matcher: &Matcher,
    config: &PathwaySettings,
    gmt: &str,
) -> PathwaySelection {
    let mut index: HashMap<String, Vec<FeatureId>> = HashMap::new();
    for (m, c) in modalities.iter().enumerate() {
        for (j, name) in c.names.iter().enumerate() {
            for key in matcher.keys_of(name) {
                index.entry(key).or_default().push((m, j));
            }
        }
    }

    // Members of every set resolved to features; unknown names counted once each.
    let mut unknown: BTreeSet<&str> = BTreeSet::new();
    let mut member_of: HashMap<FeatureId, Vec<usize>> = HashMap::new();
    let matched: Vec<Vec<FeatureId>> = sets
        .iter()
        .enumerate()
        .map(|(s, set)| {
            let mut features: Vec<FeatureId> = Vec::new();
            for member in &set.members {
                match index.get(&matcher.key(member)) {
                    Some(ids) => features.extend(ids),
                    None => {
                        unknown.insert(member);
                    }
                }
            }
            features.sort_unstable();
            features.dedup();
            for &f in &features {
                member_of.entry(f).or_default().push(s);
            }
            features
        })
        .collect();

    let usable = |&(m, j): &FeatureId| modalities[m].usable[j];
    let score = |&(m, j): &FeatureId| modalities[m].score[j];
    // Best first; ties go to the earlier modality and column, so the order is total.
    let by_score = |a: &FeatureId, b: &FeatureId| score(b).total_cmp(&score(a)).then(a.cmp(b));

    let mut ranked: Vec<(usize, Vec<FeatureId>, f64)> = matched
        .iter()
        .enumerate()
        .filter_map(|(s, features)| {
            let mut candidates: Vec<FeatureId> = features.iter().copied().filter(usable).collect();
            if candidates.len() < config.min_members.max(1) {
                return None;
            }
            candidates.sort_by(by_score);
            let top = &candidates[..config.top_k.min(candidates.len())];
            let mean = top.iter().map(score).sum::<f64>() / top.len() as f64;
            Some((s, candidates, mean))
        })
        .collect();
    let sets_with_min_members = ranked.len();
    ranked.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then(sets[a.0].name.cmp(&sets[b.0].name))
    });
    ranked.truncate(config.top_pathways.unwrap_or(usize::MAX));

    let entry = |f: FeatureId| {
        let c = &modalities[f.0];
        GroupFeature {
            modality: c.modality.to_string(),
            name: c.names[f.1].clone(),
            score: c.score[f.1],
            variance: c.variance[f.1],
            pathways: member_of
                .get(&f)
                .map(|s| s.iter().map(|&s| sets[s].name.clone()).collect())
                .unwrap_or_default(),
        }
    };
    let mut taken: BTreeSet<FeatureId> = BTreeSet::new();
    let mut groups: Vec<PathwayGroup> = Vec::new();
    for (s, candidates, mean) in &ranked {
        let features: Vec<FeatureId> = candidates
            .iter()
            .copied()
            .filter(|f| !taken.contains(f))
            .take(config.top_k)
            .collect();
        if features.is_empty() {
            continue;
        }
        taken.extend(&features);
        groups.push(PathwayGroup {
            name: sets[*s].name.clone(),
            rank: Some(groups.len() + 1),
            score: *mean,
            members: sets[*s].members.len(),
            matched: candidates.len(),
            features: features.into_iter().map(entry).collect(),
        });
    }
    if config.unassigned > 0 {
        let mut outside: Vec<FeatureId> = modalities
            .iter()
            .enumerate()
            .flat_map(|(m, c)| (0..c.names.len()).map(move |j| (m, j)))
            .filter(|f| usable(f) && !member_of.contains_key(f))
            .collect();
        let matched = outside.len();
        outside.sort_by(by_score);
        outside.truncate(config.unassigned);
        if !outside.is_empty() {
            let mean = outside.iter().map(score).sum::<f64>() / outside.len() as f64;
            groups.push(PathwayGroup {
                name: UNASSIGNED.into(),
                rank: None,
                score: mean,
                members: 0,
                matched,
                features: outside.into_iter().map(entry).collect(),
            });
        }
    }

    let coverage = Coverage {
        gene_sets: sets.len(),
        empty_sets: sets
            .iter()
            .zip(&matched)
            .filter(|(_, f)| f.is_empty())
            .map(|(s, _)| s.name.clone())
            .collect(),
        sets_with_min_members,
        min_members: config.min_members,
        unknown_members: unknown.len(),
        unknown_examples: unknown.iter().take(10).map(|s| s.to_string()).collect(),
        modalities: modalities
            .iter()
            .enumerate()
            .map(|(m, c)| ModalityCoverage {
                modality: c.modality.to_string(),
                features: c.names.len(),
                in_pathway: (0..c.names.len())
                    .filter(|&j| member_of.contains_key(&(m, j)))
                    .count(),
            })
            .collect(),
    };
    PathwaySelection {
        gmt: gmt.to_string(),
        score: config.score,
        groups,
        coverage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::gmt;

    fn config() -> PathwaySettings {
        PathwaySettings {
            gmt: "t.gmt".into(),
            case_insensitive: false,
            id_map: None,
            id_map_columns: None,
            min_members: 2,
            top_k: 2,
            score: FeatureScore::Anova,
            top_pathways: None,
            unassigned: 0,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ranks_pathways_and_places_shared_features_once() {
        let genes = names(&["G1", "G2", "G3", "G4", "G5", "G6"]);
        let proteins = names(&["P1", "P2"]);
        let modalities = [
            Candidates {
                modality: "genomics",
                names: &genes,
                usable: vec![true, true, true, true, false, true],
                score: vec![9.0, 8.0, 1.0, 2.0, 100.0, 0.5],
                variance: vec![1.0; 6],
            },
            Candidates {
                modality: "proteomics",
                names: &proteins,
                usable: vec![true, true],
                score: vec![7.0, 0.1],
                variance: vec![2.0; 2],
            },
        ];
        let text = "LOW\td\tG3\tG4\tG1\tX9\n\
                    HIGH\td\tG1\tG2\tP1\tG5\n\
                    EMPTY\td\tX1\tX2\n\
                    SMALL\td\tG5\tP2\n";
        let sets = gmt::parse(text, "t.gmt").unwrap();
        let s = select(
            &modalities,
            &sets,
            &Matcher::new(&config()).unwrap(),
            &config(),
            "t.gmt",
        );

        let order: Vec<&str> = s.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            order,
            vec!["HIGH", "LOW"],
            "SMALL has one usable feature, EMPTY none"
        );
        let high: Vec<&str> = s.groups[0]
            .features
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(high, vec!["G1", "G2"], "the constant G5 is never kept");
        assert!((s.groups[0].score - 8.5).abs() < 1e-12);
        // G1 is LOW's best member too, but HIGH ranks first: LOW takes its next best instead.
        let low: Vec<&str> = s.groups[1]
            .features
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(low, vec!["G4", "G3"]);
        assert_eq!(s.groups[0].features[0].pathways, vec!["LOW", "HIGH"]);

        assert_eq!(s.coverage.empty_sets, vec!["EMPTY"]);
        assert_eq!(s.coverage.unknown_members, 3, "X1, X2, X9");
        assert_eq!(s.coverage.sets_with_min_members, 2);
        assert_eq!(s.coverage.modalities[0].in_pathway, 5, "G6 is in no set");
        assert_eq!(s.coverage.modalities[1].in_pathway, 2);

        let keep_two_unassigned = PathwaySettings {
            unassigned: 5,
            top_pathways: Some(1),
            ..config()
        };
        let s = select(
            &modalities,
            &sets,
            &Matcher::new(&keep_two_unassigned).unwrap(),
            &keep_two_unassigned,
            "t.gmt",
        );
        let order: Vec<&str> = s.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(order, vec!["HIGH", UNASSIGNED]);
        assert_eq!(s.groups[1].features.len(), 1, "only G6 is in no gene set");
        assert_eq!(s.groups[1].rank, None);
    }

    #[test]
    fn case_folding_and_id_map_aliases_match_members() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("ids.csv");
        std::fs::write(&map, "ensembl,symbol\nENSG01,TP53\nENSG02,BRCA1\n").unwrap();
        let genes = names(&["ENSG01", "ENSG02", "egfr"]);
        let modalities = [Candidates {
            modality: "genomics",
            names: &genes,
            usable: vec![true; 3],
            score: vec![1.0, 2.0, 3.0],
            variance: vec![1.0; 3],
        }];
        let sets = gmt::parse("S\td\tTP53\tbrca1\tEGFR\n", "t.gmt").unwrap();
        let exact = PathwaySettings {
            id_map: Some(map.clone()),
            min_members: 1,
            top_k: 5,
            ..config()
        };
        let s = select(
            &modalities,
            &sets,
            &Matcher::new(&exact).unwrap(),
            &exact,
            "t.gmt",
        );
        let kept: Vec<&str> = s.groups[0]
            .features
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            kept,
            vec!["ENSG01"],
            "TP53 via the map; case differs for the others"
        );
        let folded = PathwaySettings {
            case_insensitive: true,
            ..exact
        };
        let s = select(
            &modalities,
            &sets,
            &Matcher::new(&folded).unwrap(),
            &folded,
            "t.gmt",
        );
        let kept: Vec<&str> = s.groups[0]
            .features
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(kept, vec!["egfr", "ENSG02", "ENSG01"], "best score first");

        let bad = PathwaySettings {
            id_map: Some(map),
            id_map_columns: Some(["ensembl".into(), "gene".into()]),
            ..config()
        };
        let err = format!("{:#}", Matcher::new(&bad).err().unwrap());
        assert!(
            err.contains("no column 'gene'") && err.contains("ids.csv"),
            "{err}"
        );
    }
}
