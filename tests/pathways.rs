//! Pathway-aware selection and layout on a synthetic cohort whose class signal sits in three
//! known pathways, and the mapping table that says where every feature went.

use std::collections::{BTreeSet, HashMap, VecDeque};

use deepinsight::config::{
    Arrange, ChannelMode, Collisions, EmbedMethod, FeatureScore, LayoutSettings, PathwaySettings,
    PipelineConfig,
};
use deepinsight::layout::Layout;
use deepinsight::omics::{Cohort, Modality};
use deepinsight::render::render_batch;
use deepinsight::select::FeatureSpace;
use deepinsight::select::UNASSIGNED;
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

const PATHWAYS: usize = 12;
const SIGNAL: [usize; 3] = [2, 5, 9];
const SAMPLES: usize = 120;

fn pathway(p: usize) -> String {
    format!("PW_{p:02}")
}

/// Genes g0.. and proteins p0..: pathway p owns genes 10p..10p+9 and proteins 3p..3p+2, and
/// 20 more genes belong to no pathway. Members follow their pathway's activity; the activity of
/// pathways 2, 5 and 9 shifts with the class.
fn cohort() -> (Cohort, String) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let noise = Normal::new(0.0f64, 1.0).unwrap();
    let labels: Vec<usize> = (0..SAMPLES).map(|i| i % 3).collect();
    let activity = Array2::from_shape_fn((SAMPLES, PATHWAYS), |(i, p)| {
        let shift = match SIGNAL.iter().position(|&s| s == p) {
            Some(k) if labels[i] == k => 2.0,
            Some(_) => 0.0,
            None => 0.0,
        };
        shift + noise.sample(&mut rng)
    });
    let n_genes = PATHWAYS * 10 + 20;
    let genes = Array2::from_shape_fn((SAMPLES, n_genes), |(i, g)| {
        let base = if g < PATHWAYS * 10 {
            activity[[i, g / 10]]
        } else {
            0.0
        };
        (10.0 + 3.0 * (base + noise.sample(&mut rng))) as f32
    });
    let proteins = Array2::from_shape_fn((SAMPLES, PATHWAYS * 3), |(i, q)| {
        (5.0 + 0.3 * (activity[[i, q / 3]] + 0.5 * noise.sample(&mut rng))) as f32
    });
    let mut gmt = String::new();
    for p in 0..PATHWAYS {
        gmt.push_str(&format!("{}\tsynthetic", pathway(p)));
        for g in 0..10 {
            gmt.push_str(&format!("\tg{}", p * 10 + g));
        }
        for q in 0..3 {
            gmt.push_str(&format!("\tP{}", p * 3 + q));
        }
        if p == 4 {
            gmt.push_str("\tNOT_A_FEATURE");
        }
        gmt.push('\n');
    }
    gmt.push_str("EMPTY_SET\tno members\n");
    gmt.push_str("ELSEWHERE\tother organism\tXYZ1\tXYZ2\n");
    let names = |prefix: &str, n: usize| (0..n).map(|j| format!("{prefix}{j}")).collect();
    let cohort = Cohort {
        sample_ids: (0..SAMPLES).map(|i| format!("S{i:03}")).collect(),
        labels,
        classes: vec!["a".into(), "b".into(), "c".into()],
        modalities: vec![
            Modality {
                name: "genomics".into(),
                feature_names: names("g", n_genes),
                values: genes,
            },
            Modality {
                name: "proteomics".into(),
                feature_names: names("p", PATHWAYS * 3),
                values: proteins,
            },
        ],
        dropped: Vec::new(),
    };
    (cohort, gmt)
}

fn config(gmt: &std::path::Path, score: FeatureScore) -> PipelineConfig {
    let mut c = PipelineConfig::from_toml(
        r#"
name = "t"
[data]
labels = "l.csv"
[data.modalities]
genomics = "g.csv"
proteomics = "p.csv"
"#,
    )
    .unwrap();
    c.select.pathways = Some(PathwaySettings {
        gmt: gmt.to_path_buf(),
        // Proteins are named "P.." in the GMT file and "p.." in the table.
        case_insensitive: true,
        id_map: None,
        id_map_columns: None,
        min_members: 5,
        top_k: 6,
        score,
        top_pathways: Some(3),
        unassigned: 0,
    });
    c.layout = LayoutSettings {
        arrange: Arrange::Pathways,
        method: EmbedMethod::Pca,
        mode: ChannelMode::Channels,
        height: 12,
        width: 12,
        collisions: Collisions::Assign,
        ..LayoutSettings::default()
    };
    c
}

fn fitted(score: FeatureScore) -> (Cohort, FeatureSpace, Vec<usize>) {
    let (cohort, gmt) = cohort();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sets.gmt");
    std::fs::write(&path, gmt).unwrap();
    let train: Vec<usize> = (0..SAMPLES).filter(|i| i % 5 != 0).collect();
    let c = config(&path, score);
    let space = FeatureSpace::fit(&cohort, &train, &c.select, &c.normalise).unwrap();
    (cohort, space, train)
}

#[test]
fn supervised_ranking_keeps_the_signal_pathways_and_reports_coverage() {
    let (_, space, _) = fitted(FeatureScore::Anova);
    let selection = space.pathways.as_ref().unwrap();
    let kept: BTreeSet<&str> = selection.groups.iter().map(|g| g.name.as_str()).collect();
    let signal: BTreeSet<String> = SIGNAL.iter().map(|&p| pathway(p)).collect();
    assert_eq!(
        kept,
        signal.iter().map(String::as_str).collect(),
        "{selection:#?}"
    );
    // Each kept pathway shows its best 6 of 13 members; ranks run 1, 2, 3.
    for (i, g) in selection.groups.iter().enumerate() {
        assert_eq!(g.rank, Some(i + 1));
        assert_eq!(
            (g.members, g.matched, g.features.len()),
            (13, 13, 6),
            "{}",
            g.name
        );
    }
    let c = &selection.coverage;
    assert_eq!(c.empty_sets, vec!["EMPTY_SET", "ELSEWHERE"]);
    assert_eq!(c.unknown_members, 3, "{:?}", c.unknown_examples);
    assert_eq!(c.sets_with_min_members, PATHWAYS);
    assert_eq!(
        c.modalities[0].in_pathway,
        PATHWAYS * 10,
        "20 genes are in no set"
    );
    assert_eq!(c.modalities[1].in_pathway, PATHWAYS * 3);
    assert_eq!(space.n_features(), 18);
}

#[test]
fn each_pathway_owns_one_connected_block_and_the_mapping_round_trips() {
    let (cohort, space, train) = fitted(FeatureScore::Anova);
    let values = space.transform(&cohort).unwrap();
    let layout_config = config(std::path::Path::new("unused.gmt"), FeatureScore::Anova).layout;
    let blocks = space.pathway_blocks().unwrap();
    let layout = Layout::fit_grouped(
        values.select(Axis(0), &train).view(),
        &space.groups(),
        &space.feature_list(),
        &blocks,
        &layout_config,
        1,
    )
    .unwrap();
    assert_eq!(layout.blocks.len(), 3);
    assert_eq!(layout.n_channels(), 2);

    // Which block each pixel belongs to, read off the block rectangles.
    let (h, w) = (layout.height, layout.width);
    let mut owner = vec![None; h * w];
    for (b, block) in layout.blocks.iter().enumerate() {
        for r in 0..h as u32 {
            for c in 0..w as u32 {
                if block.rect.contains([r, c]) {
                    assert!(
                        owner[r as usize * w + c as usize].is_none(),
                        "blocks overlap"
                    );
                    owner[r as usize * w + c as usize] = Some(b);
                }
            }
        }
    }
    for b in 0..layout.blocks.len() {
        let cells: Vec<usize> = (0..h * w).filter(|&i| owner[i] == Some(b)).collect();
        assert_eq!(
            connected_parts(&cells, w),
            1,
            "block {b} is one 4-connected region"
        );
    }
    // Every feature lies in its own pathway's block, one feature per pixel in each channel.
    let block_of: HashMap<usize, usize> = blocks
        .iter()
        .enumerate()
        .flat_map(|(b, (_, cols))| cols.iter().map(move |&f| (f, b)))
        .collect();
    for channel in &layout.channels {
        let mut seen = BTreeSet::new();
        for (&f, &[r, c]) in channel.features.iter().zip(&channel.pixels) {
            assert_eq!(
                owner[r as usize * w + c as usize],
                Some(block_of[&f]),
                "feature {f}"
            );
            assert!(
                seen.insert((r, c)),
                "pixel ({r}, {c}) shared in {}",
                channel.name
            );
        }
    }

    // The mapping table, written as Parquet and read back, rebuilds the same images.
    let mut table = deepinsight::mapping::mapping_table(&layout, &space).unwrap();
    let bytes = deepinsight::mapping::parquet_bytes(&mut table).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mapping.parquet");
    std::fs::write(&file, bytes).unwrap();
    let read = deepinsight::omics::read_frame(&file).unwrap();
    let column = |name: &str| read.column(name).unwrap().as_materialized_series().clone();
    let (feature, modality, block) = (column("feature"), column("modality"), column("block"));
    let (channel, row, col) = (column("channel_index"), column("row"), column("column"));
    let index: HashMap<(String, String), usize> = space
        .feature_list()
        .into_iter()
        .enumerate()
        .map(|(j, k)| (k, j))
        .collect();
    let plane = h * w;
    let mut expected = vec![0.0f32; values.nrows() * layout.image_len()];
    for i in 0..read.height() {
        let f = index[&(
            modality.str().unwrap().get(i).unwrap().to_string(),
            feature.str().unwrap().get(i).unwrap().to_string(),
        )];
        let target = channel.u32().unwrap().get(i).unwrap() as usize * plane
            + row.u32().unwrap().get(i).unwrap() as usize * w
            + col.u32().unwrap().get(i).unwrap() as usize;
        for s in 0..values.nrows() {
            expected[s * layout.image_len() + target] = values[[s, f]];
        }
        let placed_in = block.str().unwrap().get(i).unwrap();
        assert_eq!(placed_in, blocks[block_of[&f]].0);
    }
    assert_eq!(read.height(), space.n_features());
    assert_eq!(render_batch(&layout, values.view()).unwrap(), expected);

    // Shared mode: one channel, each block sized for all of its pathway's features.
    let shared = Layout::fit_grouped(
        values.select(Axis(0), &train).view(),
        &space.groups(),
        &space.feature_list(),
        &blocks,
        &LayoutSettings {
            mode: ChannelMode::Shared,
            ..layout_config
        },
        1,
    )
    .unwrap();
    assert_eq!(shared.n_channels(), 1);
    assert_eq!(shared.channels[0].features.len(), space.n_features());
    for (block, (name, cols)) in shared.blocks.iter().zip(&blocks) {
        assert_eq!(&block.name, name);
        assert!(block.rect.area() >= cols.len());
    }
    let report = &shared.report()[0];
    assert_eq!(
        report.pixels_used,
        space.n_features(),
        "assign: no pixel shared"
    );
}

/// Number of 4-connected components of the cells (flat indices into a grid `width` wide).
fn connected_parts(cells: &[usize], width: usize) -> usize {
    let set: BTreeSet<usize> = cells.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let mut parts = 0;
    for &start in cells {
        if !seen.insert(start) {
            continue;
        }
        parts += 1;
        let mut queue = VecDeque::from([start]);
        while let Some(cell) = queue.pop_front() {
            let (r, c) = (cell / width, cell % width);
            let mut next = vec![cell + width];
            if r > 0 {
                next.push(cell - width);
            }
            if c > 0 {
                next.push(cell - 1);
            }
            if c + 1 < width {
                next.push(cell + 1);
            }
            for n in next {
                if set.contains(&n) && seen.insert(n) {
                    queue.push_back(n);
                }
            }
        }
    }
    parts
}

#[test]
fn unassigned_features_form_their_own_block_when_asked() {
    let (cohort, gmt) = cohort();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sets.gmt");
    std::fs::write(&path, gmt).unwrap();
    let mut c = config(&path, FeatureScore::Anova);
    if let Some(p) = c.select.pathways.as_mut() {
        p.unassigned = 4;
        p.top_pathways = Some(2);
    }
    let train: Vec<usize> = (0..SAMPLES).collect();
    let space = FeatureSpace::fit(&cohort, &train, &c.select, &c.normalise).unwrap();
    let groups = &space.pathways.as_ref().unwrap().groups;
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[2].name, UNASSIGNED);
    assert_eq!(groups[2].matched, 20, "the 20 genes outside every set");
    assert!(
        groups[2]
            .features
            .iter()
            .all(|f| f.name["g".len()..].parse::<usize>().unwrap() >= PATHWAYS * 10)
    );
}

#[test]
fn pathway_layout_without_gene_sets_and_unmatched_names_are_clear_errors() {
    let text = r#"
name = "t"
[data]
labels = "l.csv"
[data.modalities]
genomics = "g.csv"
[layout]
arrange = "pathways"
"#;
    let err = format!("{:#}", PipelineConfig::from_toml(text).unwrap_err());
    assert!(err.contains("[select.pathways]"), "{err}");

    let (cohort, _) = cohort();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.gmt");
    std::fs::write(&path, "A\td\tX1\tX2\tX3\tX4\tX5\n").unwrap();
    let train: Vec<usize> = (0..SAMPLES).collect();
    let c = config(&path, FeatureScore::Anova);
    let err = format!(
        "{:#}",
        FeatureSpace::fit(&cohort, &train, &c.select, &c.normalise).unwrap_err()
    );
    assert!(
        err.contains("other.gmt") && err.contains("no gene set") && err.contains("X1"),
        "{err}"
    );
}
