//! Where every feature went: mapping.parquet / mapping.csv (feature -> modality, pathways,
//! channel, pixel) and, with pathway selection, pathway_summary.csv (one row per pathway).
//! Both are plain tables so that R, pandas or a spreadsheet can read them without this tool.

use std::collections::HashMap;

use anyhow::Result;
use polars::prelude::{Column, CsvWriter, DataFrame, ParquetWriter, SerWriter};

use crate::layout::Layout;
use crate::select::FeatureSpace;

/// Separates several gene sets in one cell.
pub const SEPARATOR: &str = ";";

/// One row per placed feature and channel, in channel then placement order. Columns: `feature`,
/// `modality`, `pathways` (every gene set listing the feature, `;`-separated), `block` (the
/// pathway whose block holds it, empty without a pathway layout), `channel`, `channel_index`,
/// `row`, `column`.
pub fn mapping_table(layout: &Layout, space: &FeatureSpace) -> Result<DataFrame> {
    let names = space.feature_list();
    let mut pathways_of: HashMap<(&str, &str), String> = HashMap::new();
    let mut group_of: HashMap<(&str, &str), &str> = HashMap::new();
    if let Some(selection) = &space.pathways {
        for group in &selection.groups {
            for f in &group.features {
                let key = (f.modality.as_str(), f.name.as_str());
                pathways_of.insert(key, f.pathways.join(SEPARATOR));
                group_of.insert(key, group.name.as_str());
            }
        }
    }
    let grouped = !layout.blocks.is_empty();
    let mut table = Rows::default();
    for (c, channel) in layout.channels.iter().enumerate() {
        for (&f, &[row, column]) in channel.features.iter().zip(&channel.pixels) {
            let (modality, feature) = &names[f];
            let key = (modality.as_str(), feature.as_str());
            table.feature.push(feature.clone());
            table.modality.push(modality.clone());
            table
                .pathways
                .push(pathways_of.get(&key).cloned().unwrap_or_default());
            table.block.push(if grouped {
                group_of.get(&key).copied().unwrap_or_default().to_string()
            } else {
                String::new()
            });
            table.channel.push(channel.name.clone());
            table.channel_index.push(c as u32);
            table.row.push(row);
            table.column.push(column);
        }
    }
    Ok(DataFrame::new_infer_height(vec![
        Column::new("feature".into(), table.feature),
        Column::new("modality".into(), table.modality),
        Column::new("pathways".into(), table.pathways),
        Column::new("block".into(), table.block),
        Column::new("channel".into(), table.channel),
        Column::new("channel_index".into(), table.channel_index),
        Column::new("row".into(), table.row),
        Column::new("column".into(), table.column),
    ])?)
}

#[derive(Default)]
struct Rows {
    feature: Vec<String>,
    modality: Vec<String>,
    pathways: Vec<String>,
    block: Vec<String>,
    channel: Vec<String>,
    channel_index: Vec<u32>,
    row: Vec<u32>,
    column: Vec<u32>,
}

/// One row per kept pathway (and the unassigned group), best first: rank, score, members in the
/// GMT file, matched features, features kept (in all and per modality), pixels of its block and
/// the mean variance of its kept features. `None` without pathway selection.
pub fn pathway_summary(layout: &Layout, space: &FeatureSpace) -> Result<Option<DataFrame>> {
    let Some(selection) = &space.pathways else {
        return Ok(None);
    };
    let groups = &selection.groups;
    let block_pixels: HashMap<&str, u32> = layout
        .blocks
        .iter()
        .map(|b| (b.name.as_str(), b.rect.area() as u32))
        .collect();
    let mut columns = vec![
        Column::new(
            "pathway".into(),
            groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "rank".into(),
            groups
                .iter()
                .map(|g| g.rank.map(|r| r as u32))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "score".into(),
            groups.iter().map(|g| g.score).collect::<Vec<_>>(),
        ),
        Column::new(
            "members".into(),
            groups.iter().map(|g| g.members as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "matched".into(),
            groups.iter().map(|g| g.matched as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "kept".into(),
            groups
                .iter()
                .map(|g| g.features.len() as u32)
                .collect::<Vec<_>>(),
        ),
    ];
    for m in &space.modalities {
        columns.push(Column::new(
            format!("kept_{}", m.name).into(),
            groups
                .iter()
                .map(|g| g.features.iter().filter(|f| f.modality == m.name).count() as u32)
                .collect::<Vec<_>>(),
        ));
    }
    columns.push(Column::new(
        "pixels".into(),
        groups
            .iter()
            .map(|g| block_pixels.get(g.name.as_str()).copied())
            .collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "mean_variance".into(),
        groups
            .iter()
            .map(|g| g.features.iter().map(|f| f.variance).sum::<f64>() / g.features.len() as f64)
            .collect::<Vec<_>>(),
    ));
    Ok(Some(DataFrame::new_infer_height(columns)?))
}

pub fn csv_bytes(frame: &mut DataFrame) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    CsvWriter::new(&mut out).finish(frame)?;
    Ok(out)
}

pub fn parquet_bytes(frame: &mut DataFrame) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ParquetWriter::new(&mut out).finish(frame)?;
    Ok(out)
}
