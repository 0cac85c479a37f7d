//! The partition step of the join: rows of every modality are spread over buckets on disk by a
//! hash of their sample id, so that one bucket of all modalities fits in memory and joins there
//! (a grace hash join). Memory stays at one bucket whatever the input size.
//!
//! A bucket file is a plain sequence of records, each the sample id's length (u32, LE), its
//! UTF-8 bytes and the row's features as f32 LE; it lives only for the job, in a private folder.

use std::fs::File;
use std::hash::Hasher;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::ArrayView1;

/// A stable 64-bit hash of a sample id: FNV-1a, the same on every machine and Rust version,
/// so shards and buckets are reproducible.
pub fn id_hash(id: &str) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write(id.as_bytes());
    h.finish()
}

/// Which of `n` shards a sample belongs to.
pub fn shard_of(hash: u64, n: usize) -> usize {
    (hash % n as u64) as usize
}

/// Which of `buckets` buckets a sample goes to; uses the hash's high bits, which the shard
/// choice (low bits, modulo) leaves independent.
pub fn bucket_of(hash: u64, buckets: usize) -> usize {
    ((hash >> 32) % buckets as u64) as usize
}

/// The bucket files of one modality (modalities are partitioned in parallel).
pub struct SpillWriter {
    writers: Vec<BufWriter<File>>,
    record: Vec<u8>,
}

fn bucket_path(dir: &Path, modality: usize, bucket: usize) -> std::path::PathBuf {
    dir.join(format!("m{modality}-b{bucket:05}.rows"))
}

impl SpillWriter {
    /// Opens the `buckets` files of modality `modality` in `dir`.
    pub fn create(dir: &Path, modality: usize, buckets: usize) -> Result<Self> {
        let writers = (0..buckets)
            .map(|b| {
                let path = bucket_path(dir, modality, b);
                File::create(&path)
                    .map(|f| BufWriter::with_capacity(1 << 15, f))
                    .with_context(|| format!("cannot create {}", path.display()))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            writers,
            record: Vec::new(),
        })
    }

    pub fn push(&mut self, bucket: usize, id: &str, values: ArrayView1<f32>) -> Result<()> {
        // One write per row: a write per value costs more than the encoding.
        self.record.clear();
        self.record
            .extend_from_slice(&(id.len() as u32).to_le_bytes());
        self.record.extend_from_slice(id.as_bytes());
        match values.as_slice() {
            Some(row) => {
                for v in row {
                    self.record.extend_from_slice(&v.to_le_bytes());
                }
            }
            None => {
                for v in values {
                    self.record.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        self.writers[bucket].write_all(&self.record)?;
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        for mut w in self.writers {
            w.flush().context("cannot write the partition files")?;
        }
        Ok(())
    }
}

/// One modality's rows of one bucket: ids and a row-major block of `width` values per row.
pub struct BucketRows {
    pub ids: Vec<String>,
    pub values: Vec<f32>,
    pub width: usize,
}

impl BucketRows {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.width..(i + 1) * self.width]
    }
}

pub fn read_bucket(dir: &Path, modality: usize, bucket: usize, width: usize) -> Result<BucketRows> {
    let path = bucket_path(dir, modality, bucket);
    let mut r = BufReader::new(
        File::open(&path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let mut ids = Vec::new();
    let mut values = Vec::new();
    let mut len = [0u8; 4];
    let mut row = vec![0u8; width * 4];
    loop {
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        let mut id = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut id)?;
        r.read_exact(&mut row)?;
        let Ok(id) = String::from_utf8(id) else {
            bail!("{}: corrupt partition file", path.display());
        };
        ids.push(id);
        values.extend(
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
    Ok(BucketRows { ids, values, width })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn rows_come_back_from_their_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SpillWriter::create(dir.path(), 0, 3).unwrap();
        w.push(1, "S1", array![1.0f32, f32::NAN].view()).unwrap();
        w.push(1, "sample-ü", array![3.0f32, 4.0].view()).unwrap();
        w.finish().unwrap();
        let mut w = SpillWriter::create(dir.path(), 1, 3).unwrap();
        w.push(2, "S1", array![9.0f32].view()).unwrap();
        w.finish().unwrap();
        let b = read_bucket(dir.path(), 0, 1, 2).unwrap();
        assert_eq!(b.ids, vec!["S1", "sample-ü"]);
        assert!(b.row(0)[1].is_nan());
        assert_eq!(b.row(1), &[3.0, 4.0]);
        assert!(read_bucket(dir.path(), 0, 0, 2).unwrap().ids.is_empty());
        assert_eq!(read_bucket(dir.path(), 1, 2, 1).unwrap().values, vec![9.0]);
    }

    #[test]
    fn hashes_are_stable_and_spread() {
        // FNV-1a of "a" is fixed by the algorithm's definition.
        assert_eq!(id_hash("a"), 0xaf63dc4c8601ec8c);
        let mut shards = [0usize; 4];
        for i in 0..4000 {
            shards[shard_of(id_hash(&format!("S{i:05}")), 4)] += 1;
        }
        assert!(
            shards.iter().all(|&n| (800..1200).contains(&n)),
            "{shards:?}"
        );
    }
}
