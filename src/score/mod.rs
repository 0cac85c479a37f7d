//! Batch scoring of Parquet datasets with a trained run, in bounded memory.
//!
//! 1. **Partition**: every modality's files are read in record batches (only the sample id and
//!    the model's features are decoded); each row of this shard goes to a bucket file on disk
//!    chosen by a stable hash of its sample id (`spill`).
//! 2. **Score**: bucket by bucket, the modalities' rows are joined on sample id in memory, the
//!    bad-row policies applied, and the samples normalised, rendered and scored; each bucket's
//!    result is written as a part file (atomically) under `<output>.parts/`.
//! 3. **Merge**: once every bucket has its part, the parts are copied into the output (through a
//!    temporary file that is renamed), one row group per part, and the parts folder removed.
//!
//! Shards (`k/n`) take the samples whose id hash is k modulo n, so the shards of a job are
//! disjoint and together hold every sample. `resume` keeps the parts of an interrupted run of
//! the same job (same model, inputs, shard and policies) and skips a shard whose output is
//! already complete.

pub(crate) mod input;
pub(crate) mod output;
pub(crate) mod predict;
pub(crate) mod spill;
mod summary;

pub use predict::{PredictOptions, PredictSummary, run as predict};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::artefact::guard;
use crate::run::RunDir;
use input::{FileRows, ModalityInput};
use output::Scored;

/// What to do with a missing value, or with a sample absent from one modality's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Training medians (for an absent sample: every feature of that modality).
    Impute,
    /// Write the sample with no prediction and the reason.
    Skip,
    /// Stop with an error naming the sample, modality and column.
    Fail,
}

impl FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "impute" => Ok(Self::Impute),
            "skip" => Ok(Self::Skip),
            "fail" => Ok(Self::Fail),
            _ => Err(format!("'{s}': expected impute, skip or fail")),
        }
    }
}

/// Shard `index` of `count` (0-based, as Kubernetes' JOB_COMPLETION_INDEX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s
            .split_once('/')
            .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => Err(format!(
                "'{s}': expected k/n with 0 <= k < n, e.g. 0/4 (shards count from 0)"
            )),
        }
    }
}

pub struct ScoreOptions {
    /// A run folder written by `deepinsight run`.
    pub model: PathBuf,
    /// (modality, Parquet file or glob).
    pub inputs: Vec<(String, String)>,
    pub output: PathBuf,
    pub shard: Shard,
    pub resume: bool,
    pub missing_values: Policy,
    pub missing_samples: Policy,
    /// Rows per record batch read from the input files.
    pub read_rows: usize,
    /// Target rows per bucket: the memory of the join and scoring step.
    pub bucket_rows: usize,
    /// Images per forward pass of the model.
    pub batch_size: usize,
    /// Score at most this many new parts, then stop (a later `resume` continues).
    pub max_parts: Option<usize>,
}

impl ScoreOptions {
    pub fn new(model: PathBuf, inputs: Vec<(String, String)>, output: PathBuf) -> Self {
        Self {
            model,
            inputs,
            output,
            shard: Shard::WHOLE,
            resume: false,
            missing_values: Policy::Impute,
            missing_samples: Policy::Skip,
            read_rows: 8192,
            bucket_rows: 16384,
            batch_size: 32,
            max_parts: None,
        }
    }
}

/// Counts of one part (one bucket), kept beside it so a resumed job can report the whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PartCounts {
    pub samples: usize,
    pub scored: usize,
    /// Skipped samples by reason (`missing from <modality>`, `missing value in <modality>`).
    pub skipped: BTreeMap<String, usize>,
    pub imputed_values: usize,
    pub imputed_samples: usize,
    /// Values far outside the training range, per modality (clipped; see
    /// `FeatureSpace::far_outside`).
    #[serde(default)]
    pub far_outside: BTreeMap<String, usize>,
}

impl PartCounts {
    fn add(&mut self, other: &PartCounts) {
        self.samples += other.samples;
        self.scored += other.scored;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k.clone()).or_default() += v;
        }
        self.imputed_values += other.imputed_values;
        self.imputed_samples += other.imputed_samples;
        for (k, v) in &other.far_outside {
            *self.far_outside.entry(k.clone()).or_default() += v;
        }
    }
}

/// What is kept beside each part file (`part-NNNNN.json`): enough to tell, on resume, a sound
/// part of this bucket from a truncated, damaged or misplaced one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct PartRecord {
    bucket: usize,
    rows: usize,
    sha256: String,
    counts: PartCounts,
}

#[derive(Debug, Clone)]
pub struct ScoreSummary {
    pub output: PathBuf,
    pub shard: Shard,
    /// The output was already complete for this job (`resume`): nothing was done.
    pub already_complete: bool,
    /// Every part is done and the output written.
    pub complete: bool,
    pub buckets: usize,
    pub parts_reused: usize,
    pub parts_scored: usize,
    /// Rows of this shard read per modality (this invocation).
    pub rows_read: Vec<(String, u64)>,
    /// Totals over all parts of the job so far.
    pub counts: PartCounts,
    pub stage_seconds: Vec<(String, f64)>,
}

/// Identity of a job: resuming is only allowed into a job with the same identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Job {
    model_sha256: String,
    shard: Shard,
    buckets: usize,
    missing_values: Policy,
    missing_samples: Policy,
    /// (modality, file, size in bytes, modification time in ns since the epoch)
    inputs: Vec<(String, String, u64, u128)>,
}

const JOB_KEY: &str = "deepinsight.job";
/// The job record in a parts folder; its presence marks a folder the tool wrote.
const JOB_FILE: &str = "job.json";
const BUCKET_KEY: &str = "deepinsight.bucket";

pub fn run(options: &ScoreOptions) -> Result<ScoreSummary> {
    let mut clock = Clock::start();
    let run_dir = RunDir::open(&options.model)?;
    let modalities: Vec<(String, Vec<String>)> = run_dir
        .manifest
        .feature_space
        .modalities
        .iter()
        .map(|m| (m.name.clone(), m.features.clone()))
        .collect();
    let inputs = input::resolve(&options.inputs, &modalities)?;
    let parts_dir = parts_dir(&options.output);
    check_outputs(options, &inputs, &parts_dir)?;
    let total_rows: Vec<u64> = inputs
        .iter()
        .map(|m| input::count_rows(&m.files))
        .collect::<Result<_>>()?;
    let largest = total_rows.iter().copied().max().unwrap_or(0) as usize;
    let buckets = (largest / options.shard.count)
        .div_ceil(options.bucket_rows.max(1))
        .clamp(1, 256);
    let job = Job {
        model_sha256: run_dir.model_sha256.clone(),
        shard: options.shard,
        buckets,
        missing_values: options.missing_values,
        missing_samples: options.missing_samples,
        inputs: input_identity(&inputs)?,
    };
    let job_id = crate::artefact::sha256_hex(&serde_json::to_vec(&job)?);
    let mut summary = ScoreSummary {
        output: options.output.clone(),
        shard: options.shard,
        already_complete: false,
        complete: false,
        buckets,
        parts_reused: 0,
        parts_scored: 0,
        rows_read: Vec::new(),
        counts: PartCounts::default(),
        stage_seconds: Vec::new(),
    };
    if options.resume
        && output::read_metadata(&options.output).is_some_and(|m| m.get(JOB_KEY) == Some(&job_id))
    {
        tracing::info!(output = %options.output.display(), "already complete: nothing to do");
        summary.already_complete = true;
        summary.complete = true;
        return Ok(summary);
    }

    let mut records = prepare_parts(&parts_dir, &job, &job_id, options.resume)?;
    let scored = score_parts(
        options,
        &run_dir,
        &inputs,
        &total_rows,
        &parts_dir,
        &job_id,
        &mut records,
        &mut summary,
        &mut clock,
    );
    if let Err(e) = scored {
        // A parts folder with no sound part holds nothing to resume: an early error (a bad
        // input, a duplicate sample) leaves no folder behind.
        if records.iter().all(Option::is_none) {
            let _ = std::fs::remove_dir_all(&parts_dir);
        }
        return Err(e);
    }

    for record in records.iter().flatten() {
        summary.counts.add(&record.counts);
    }
    if records.iter().all(Option::is_some) {
        let parts: Vec<PathBuf> = (0..buckets).map(|b| part_path(&parts_dir, b)).collect();
        let metadata = HashMap::from([
            (JOB_KEY.to_string(), job_id),
            (
                "deepinsight.model_sha256".into(),
                run_dir.model_sha256.clone(),
            ),
            ("deepinsight.shard".into(), options.shard.to_string()),
            (
                "deepinsight.version".into(),
                env!("CARGO_PKG_VERSION").into(),
            ),
        ]);
        output::merge(
            &parts,
            &options.output,
            output::schema(run_dir.classes()),
            &metadata,
        )?;
        std::fs::remove_dir_all(&parts_dir)
            .with_context(|| format!("cannot remove {}", parts_dir.display()))?;
        summary.complete = true;
        clock.lap("merge");
    }
    summary.stage_seconds = clock.laps;
    Ok(summary)
}

/// Partitions the inputs and scores the buckets without a sound part (at most `max_parts` of
/// them), writing each part and its record; `records` gains one entry per part written.
#[allow(clippy::too_many_arguments)]
fn score_parts(
    options: &ScoreOptions,
    run_dir: &RunDir,
    inputs: &[ModalityInput],
    total_rows: &[u64],
    parts_dir: &Path,
    job_id: &str,
    records: &mut [Option<PartRecord>],
    summary: &mut ScoreSummary,
    clock: &mut Clock,
) -> Result<()> {
    let done: Vec<bool> = records.iter().map(Option::is_some).collect();
    summary.parts_reused = done.iter().filter(|&&d| d).count();
    clock.lap("open");

    let spill_dir = tempfile::Builder::new()
        .prefix(".spill-")
        .tempdir_in(parts_dir)
        .with_context(|| format!("cannot create a folder in {}", parts_dir.display()))?;
    let spilled = partition(
        inputs,
        total_rows,
        run_dir,
        options,
        &done,
        spill_dir.path(),
    )?;
    summary.rows_read = spilled.rows_read;
    clock.lap("read + partition");

    let todo: Vec<usize> = (0..records.len()).filter(|&b| !done[b]).collect();
    let limit = options.max_parts.unwrap_or(usize::MAX);
    let bar = progress(
        todo.iter()
            .take(limit)
            .map(|&b| spilled.bucket_rows[b])
            .sum(),
        "scoring samples",
    );
    let mut scored_rows = 0u64;
    for &b in todo.iter().take(limit) {
        let (rows, mut counts) = join_bucket(spill_dir.path(), b, inputs, options, clock)?;
        let scored = score_rows(run_dir, rows, options.batch_size, &bar, clock, &mut counts)?;
        let batch = output::batch(&scored, run_dir.classes(), &run_dir.model_sha256)?;
        let bytes = output::part_bytes(&batch, &part_identity(job_id, b))?;
        let (rows, scored) = (batch.num_rows(), counts.scored);
        let record = PartRecord {
            bucket: b,
            rows,
            sha256: crate::artefact::sha256_hex(&bytes),
            counts,
        };
        // The record goes first: a part is only taken as done when its record matches it.
        crate::artefact::write_atomic(&record_path(parts_dir, b), &serde_json::to_vec(&record)?)?;
        crate::artefact::write_atomic(&part_path(parts_dir, b), &bytes)?;
        records[b] = Some(record);
        clock.lap("write");
        summary.parts_scored += 1;
        crate::progress::line(format_args!(
            "part {}/{} scored: {rows} samples ({scored} scored), {:.1} s",
            b + 1,
            records.len(),
            bar.elapsed().as_secs_f64()
        ));
        scored_rows += spilled.bucket_rows[b];
        bar.set_position(scored_rows);
    }
    bar.finish_and_clear();
    Ok(())
}

/// The key-value metadata that ties a part file to its job and bucket, so a part copied over
/// another bucket's is told apart.
fn part_identity(job_id: &str, bucket: usize) -> HashMap<String, String> {
    HashMap::from([
        (JOB_KEY.to_string(), job_id.to_string()),
        (BUCKET_KEY.to_string(), bucket.to_string()),
    ])
}

/// The record of bucket `b` if its part is sound: readable, of this job and bucket, and with
/// the rows and checksum its record gives; else why not.
fn sound_part(dir: &Path, b: usize, job_id: &str) -> Result<PartRecord, String> {
    let record_file = record_path(dir, b);
    let part = part_path(dir, b);
    if !part.exists() {
        return Err(format!("{} is missing", part.display()));
    }
    let record: PartRecord = std::fs::read(&record_file)
        .map_err(|e| format!("{}: {e}", record_file.display()))
        .and_then(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not a part record ({e})", record_file.display()))
        })?;
    let bytes = std::fs::read(&part).map_err(|e| format!("{}: {e}", part.display()))?;
    let (metadata, rows) = output::part_metadata(&bytes)
        .map_err(|e| format!("{}: unreadable part ({e:#})", part.display()))?;
    // The writer adds keys of its own (the Arrow schema): compare the identity's keys only.
    let identity = part_identity(job_id, b);
    if identity.iter().any(|(k, v)| metadata.get(k) != Some(v)) || record.bucket != b {
        return Err(format!(
            "{}: belongs to another bucket or job",
            part.display()
        ));
    }
    if rows != record.rows || crate::artefact::sha256_hex(&bytes) != record.sha256 {
        return Err(format!(
            "{}: {rows} rows and its checksum do not match its record {}",
            part.display(),
            record_file.display()
        ));
    }
    Ok(record)
}

/// Refuses an output, or a parts folder beside it, that would overwrite an input or something
/// the tool did not write.
fn check_outputs(options: &ScoreOptions, inputs: &[ModalityInput], parts_dir: &Path) -> Result<()> {
    let mut read: Vec<&Path> = vec![&options.model];
    read.extend(
        inputs
            .iter()
            .flat_map(|m| m.files.iter().map(PathBuf::as_path)),
    );
    guard::check_file(
        "--output",
        &options.output,
        &read,
        output::written_by_deepinsight,
    )?;
    guard::check_folder("the parts folder", parts_dir, JOB_FILE, &read)
}

fn parts_dir(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".parts");
    output.with_file_name(name)
}

fn part_path(dir: &Path, bucket: usize) -> PathBuf {
    dir.join(format!("part-{bucket:05}.parquet"))
}

fn record_path(dir: &Path, bucket: usize) -> PathBuf {
    dir.join(format!("part-{bucket:05}.json"))
}

/// Size and modification time stand for the content: hashing terabytes to check a resume
/// would cost more than the scoring.
fn input_identity(inputs: &[ModalityInput]) -> Result<Vec<(String, String, u64, u128)>> {
    let mut out = Vec::new();
    for m in inputs {
        for f in &m.files {
            let meta =
                std::fs::metadata(f).with_context(|| format!("cannot read {}", f.display()))?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let path = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
            out.push((
                m.name.clone(),
                path.display().to_string(),
                meta.len(),
                modified,
            ));
        }
    }
    Ok(out)
}

/// Creates the parts folder for `job`, or (with `resume`) keeps the sound parts of the same
/// job; a damaged or misplaced part is scored again, with a warning naming it. Returns the
/// record of each bucket whose part is kept.
fn prepare_parts(
    dir: &Path,
    job: &Job,
    job_id: &str,
    resume: bool,
) -> Result<Vec<Option<PartRecord>>> {
    let job_file = dir.join(JOB_FILE);
    if dir.exists() {
        let same = std::fs::read(&job_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Job>(&b).ok())
            .is_some_and(|j| j == *job);
        if resume && same {
            let records: Vec<Option<PartRecord>> = (0..job.buckets)
                .map(|b| match sound_part(dir, b, job_id) {
                    Ok(record) => Some(record),
                    Err(why) => {
                        if part_path(dir, b).exists() || record_path(dir, b).exists() {
                            tracing::warn!("scoring bucket {b} again: {why}");
                        }
                        None
                    }
                })
                .collect();
            tracing::info!(
                reused = records.iter().flatten().count(),
                buckets = job.buckets,
                "resuming"
            );
            return Ok(records);
        }
        if resume {
            tracing::warn!(
                dir = %dir.display(),
                "the parts there belong to another job (model, inputs, shard or policy differ): starting over"
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::artefact::write_atomic(&job_file, &serde_json::to_vec_pretty(job)?)?;
    Ok(vec![None; job.buckets])
}

struct Spilled {
    /// Rows of this shard kept per modality.
    rows_read: Vec<(String, u64)>,
    /// Rows per bucket of its largest modality: about the samples it holds.
    bucket_rows: Vec<u64>,
}

/// Reads every input file and spreads this shard's rows over the buckets not yet done.
fn partition(
    inputs: &[ModalityInput],
    total_rows: &[u64],
    run_dir: &RunDir,
    options: &ScoreOptions,
    done: &[bool],
    spill_dir: &Path,
) -> Result<Spilled> {
    let bar = progress(total_rows.iter().sum(), "reading rows");
    // Modalities are independent until the join: one task each (decoding dominates).
    let per_modality: Vec<Vec<u64>> = inputs
        .par_iter()
        .enumerate()
        .map(|(m, input)| partition_modality(m, input, run_dir, options, done, spill_dir, &bar))
        .collect::<Result<_>>()?;
    bar.finish_and_clear();
    let mut bucket_rows = vec![0u64; done.len()];
    for counts in &per_modality {
        for (total, &n) in bucket_rows.iter_mut().zip(counts) {
            *total = (*total).max(n);
        }
    }
    Ok(Spilled {
        rows_read: inputs
            .iter()
            .zip(&per_modality)
            .map(|(input, counts)| (input.name.clone(), counts.iter().sum()))
            .collect(),
        bucket_rows,
    })
}

/// Spills one modality's rows of this shard; returns the rows per bucket.
fn partition_modality(
    m: usize,
    input: &ModalityInput,
    run_dir: &RunDir,
    options: &ScoreOptions,
    done: &[bool],
    spill_dir: &Path,
    bar: &ProgressBar,
) -> Result<Vec<u64>> {
    let buckets = done.len();
    let mut spill = spill::SpillWriter::create(spill_dir, m, buckets)?;
    let mut per_bucket = vec![0u64; buckets];
    for path in &input.files {
        let (mut rows, missing) = FileRows::open(
            path,
            run_dir.sample_id_column(),
            &input.features,
            options.read_rows,
            options.missing_values == Policy::Impute,
            run_dir.manifest.config.data.infinite_values,
        )?;
        if !missing.is_empty() {
            tracing::warn!(
                file = %path.display(),
                columns = missing.len(),
                first = %missing[0],
                "feature columns missing: imputed with training medians"
            );
        }
        while let Some(batch) = rows.next_rows()? {
            bar.inc(batch.ids.len() as u64);
            for (i, id) in batch.ids.iter().enumerate() {
                let hash = spill::id_hash(id);
                if spill::shard_of(hash, options.shard.count) != options.shard.index {
                    continue;
                }
                let b = spill::bucket_of(hash, buckets);
                if done[b] {
                    continue;
                }
                spill.push(b, id, batch.values.row(i))?;
                per_bucket[b] += 1;
            }
        }
    }
    spill.finish()?;
    Ok(per_bucket)
}

/// The joined rows of one bucket, in sample-id order.
struct Joined {
    /// Every sample of the bucket with its reason when skipped.
    ids: Vec<(String, Option<String>)>,
    /// Per modality, the raw rows of the samples to score (NaN = impute).
    raw: Vec<Array2<f32>>,
}

fn join_bucket(
    spill_dir: &Path,
    bucket: usize,
    inputs: &[ModalityInput],
    options: &ScoreOptions,
    clock: &mut Clock,
) -> Result<(Joined, PartCounts)> {
    let tables: Vec<spill::BucketRows> = inputs
        .iter()
        .enumerate()
        .map(|(m, input)| spill::read_bucket(spill_dir, m, bucket, input.features.len()))
        .collect::<Result<_>>()?;
    let mut index: Vec<HashMap<&str, usize>> = Vec::with_capacity(tables.len());
    for (table, input) in tables.iter().zip(inputs) {
        let mut map = HashMap::with_capacity(table.ids.len());
        for (i, id) in table.ids.iter().enumerate() {
            if map.insert(id.as_str(), i).is_some() {
                bail!(
                    "sample '{id}' appears more than once in the {} input ({})",
                    input.name,
                    files_list(input)
                );
            }
        }
        index.push(map);
    }
    let mut all: Vec<&str> = index.iter().flat_map(|m| m.keys().copied()).collect();
    all.sort_unstable();
    all.dedup();

    let mut counts = PartCounts {
        samples: all.len(),
        ..PartCounts::default()
    };
    let mut ids = Vec::with_capacity(all.len());
    let mut rows: Vec<Vec<f32>> = vec![Vec::new(); inputs.len()];
    for id in all {
        let absent: Vec<usize> = (0..inputs.len())
            .filter(|&m| !index[m].contains_key(id))
            .collect();
        if let Some(&m) = absent.first() {
            match options.missing_samples {
                Policy::Skip => {
                    let reason = format!("missing from {}", inputs[m].name);
                    *counts.skipped.entry(reason.clone()).or_default() += 1;
                    ids.push((id.to_string(), Some(reason)));
                    continue;
                }
                Policy::Fail => bail!(
                    "sample '{id}' has no row in the {} input ({}); --missing-samples skip or impute lets the job go on",
                    inputs[m].name,
                    files_list(&inputs[m])
                ),
                Policy::Impute => {}
            }
        }
        // The first missing value, if any, decides for the whole sample.
        let mut first_missing: Option<(usize, usize)> = None;
        let mut missing_values = 0usize;
        for (m, input) in inputs.iter().enumerate() {
            match index[m].get(id) {
                Some(&i) => {
                    for (j, v) in tables[m].row(i).iter().enumerate() {
                        if v.is_nan() {
                            missing_values += 1;
                            first_missing.get_or_insert((m, j));
                        }
                    }
                }
                None => missing_values += input.features.len(),
            }
        }
        if let Some((m, j)) = first_missing {
            match options.missing_values {
                Policy::Skip => {
                    let reason = format!("missing value in {}", inputs[m].name);
                    *counts.skipped.entry(reason.clone()).or_default() += 1;
                    ids.push((
                        id.to_string(),
                        Some(format!("{reason} column {}", inputs[m].features[j])),
                    ));
                    continue;
                }
                Policy::Fail => bail!(
                    "sample '{id}': missing value in the {} input, column '{}' ({}); --missing-values impute or skip lets the job go on",
                    inputs[m].name,
                    inputs[m].features[j],
                    files_list(&inputs[m])
                ),
                Policy::Impute => {}
            }
        }
        if missing_values > 0 {
            counts.imputed_values += missing_values;
            counts.imputed_samples += 1;
        }
        for (m, input) in inputs.iter().enumerate() {
            match index[m].get(id) {
                Some(&i) => rows[m].extend_from_slice(tables[m].row(i)),
                None => rows[m].extend(std::iter::repeat_n(f32::NAN, input.features.len())),
            }
        }
        counts.scored += 1;
        ids.push((id.to_string(), None));
    }
    let raw = rows
        .into_iter()
        .zip(inputs)
        .map(|(flat, input)| {
            let width = input.features.len();
            Array2::from_shape_vec((flat.len() / width.max(1), width), flat)
                .expect("rows of the modality's width")
        })
        .collect();
    clock.lap("join");
    Ok((Joined { ids, raw }, counts))
}

fn files_list(input: &ModalityInput) -> String {
    let names: Vec<String> = input
        .files
        .iter()
        .take(3)
        .map(|f| f.display().to_string())
        .collect();
    if input.files.len() > 3 {
        format!("{} and {} more", names.join(", "), input.files.len() - 3)
    } else {
        names.join(", ")
    }
}

/// Samples rendered at a time: bounds the image buffer (a bucket's images at 224 x 224 would
/// take gigabytes) while giving every core whole batches to work on.
const RENDER_CHUNK: usize = 512;

fn score_rows(
    run_dir: &RunDir,
    joined: Joined,
    batch_size: usize,
    bar: &ProgressBar,
    clock: &mut Clock,
    counts: &mut PartCounts,
) -> Result<Vec<Scored>> {
    let views: Vec<_> = joined.raw.iter().map(|a| a.view()).collect();
    let space = &run_dir.manifest.feature_space;
    counts.far_outside = space.far_outside(&views).into_iter().collect();
    let values = space.transform_selected(&views)?;
    drop(joined.raw);
    clock.lap("normalise + render");
    let mut probabilities = Vec::with_capacity(values.nrows());
    for start in (0..values.nrows()).step_by(RENDER_CHUNK) {
        let end = (start + RENDER_CHUNK).min(values.nrows());
        let images = run_dir.render(values.slice(ndarray::s![start..end, ..]))?;
        clock.lap("normalise + render");
        probabilities.extend(run_dir.predict(&images, batch_size));
        clock.lap("model");
        bar.inc((end - start) as u64);
    }
    let mut probabilities = probabilities.into_iter();
    Ok(joined
        .ids
        .into_iter()
        .map(|(sample_id, reason)| Scored {
            probabilities: if reason.is_none() {
                probabilities.next()
            } else {
                None
            },
            sample_id,
            reason,
        })
        .collect())
}

fn progress(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template(
            "{msg} {bar:30} {human_pos}/{human_len} {per_sec:0} eta {eta}",
        )
        .expect("static template"),
    );
    bar.set_message(message.to_string());
    bar
}

/// Wall time per stage, summed over buckets.
#[derive(Default)]
struct Clock {
    last: Option<Instant>,
    laps: Vec<(String, f64)>,
}

impl Clock {
    fn start() -> Self {
        Self {
            last: Some(Instant::now()),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, stage: &str) {
        let now = Instant::now();
        let seconds = self
            .last
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        self.last = Some(now);
        match self.laps.iter_mut().find(|(s, _)| s == stage) {
            Some((_, total)) => *total += seconds,
            None => self.laps.push((stage.to_string(), seconds)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_and_policy_parse_or_explain() {
        assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
        assert_eq!(" 0 / 1 ".parse::<Shard>(), Ok(Shard::WHOLE));
        for bad in ["5/5", "1/0", "a/2", "3", "-1/2"] {
            assert!(
                bad.parse::<Shard>().unwrap_err().contains("0 <= k < n"),
                "{bad}"
            );
        }
        assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
        assert_eq!("skip".parse::<Policy>(), Ok(Policy::Skip));
        assert!("drop".parse::<Policy>().is_err());
        assert_eq!(
            parts_dir(Path::new("out/scores.parquet")),
            PathBuf::from("out/scores.parquet.parts")
        );
    }
}
