//! Writing a run folder: every file staged, checksummed into the manifest, and the folder
//! renamed into place only when the manifest is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{FORMAT, MANIFEST, Manifest, RunDir};
use crate::artefact::{self, StagedDir};

/// A run folder being written. Dropped without `commit`, it leaves nothing behind.
pub struct RunWriter {
    staged: StagedDir,
    files: BTreeMap<String, String>,
}

impl RunDir {
    /// Starts a run folder at `target`; an earlier run there is replaced only at `commit`.
    pub fn create(target: &Path) -> Result<RunWriter> {
        Ok(RunWriter {
            staged: StagedDir::new(target)?,
            files: BTreeMap::new(),
        })
    }
}

impl RunWriter {
    /// Writes one file of the run and records its checksum.
    pub fn put(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.staged.write(name, bytes)?;
        self.files
            .insert(name.to_string(), artefact::sha256_hex(bytes));
        Ok(())
    }

    /// The bytes of a file put earlier.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.staged.path().join(name);
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    }

    /// Checksums of the files put so far, by name.
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// Writes the manifest, with the checksums of every file put and the format version, and
    /// moves the finished folder into place.
    pub fn commit(self, mut manifest: Manifest) -> Result<PathBuf> {
        manifest.format = FORMAT;
        manifest.files = self.files;
        self.staged
            .write(MANIFEST, &serde_json::to_vec_pretty(&manifest)?)?;
        self.staged
            .commit()
            .context("cannot move the finished run into place")
    }
}
