//! Writing artefacts safely: every file goes to a temporary name in the same folder and is
//! renamed into place, and a run's folder is staged whole and swapped in at the end, so a crash
//! never leaves half a model behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

pub(crate) mod guard;

/// Writes `bytes` to `path` through a temporary file in the same folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    // Temporary files are created private (0600); an artefact is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot rename into {}", path.display()))?;
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(sha256_hex(&bytes))
}

/// A run folder being filled: files go into a hidden staging folder beside the final one,
/// which replaces the final folder only in `commit`. Dropped without commit, it removes itself.
pub struct StagedDir {
    staging: Option<tempfile::TempDir>,
    target: PathBuf,
}

impl StagedDir {
    pub fn new(target: &Path) -> Result<Self> {
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("run");
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{name}.staging-"))
            .tempdir_in(parent)
            .with_context(|| format!("cannot create a staging folder in {}", parent.display()))?;
        Ok(Self {
            staging: Some(staging),
            target: target.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        self.staging.as_ref().expect("not committed").path()
    }

    /// Writes one file of the run.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.path().join(name);
        write_atomic(&path, bytes)?;
        Ok(path)
    }

    /// Moves the staged folder to its final name, replacing an earlier run of the same name.
    /// On failure the staged folder is removed and the earlier run stays in place.
    pub fn commit(mut self) -> Result<PathBuf> {
        let staging = self.staging.take().expect("committed once").keep();
        let moved = self.swap_in(&staging);
        if moved.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        moved?;
        Ok(self.target.clone())
    }

    fn swap_in(&self, staging: &Path) -> Result<()> {
        if !self.target.exists() {
            return std::fs::rename(staging, &self.target)
                .with_context(|| format!("cannot rename into {}", self.target.display()));
        }
        let name = self
            .target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("run");
        let old = self
            .target
            .with_file_name(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(&self.target, &old)
            .with_context(|| format!("cannot move the previous {} aside", self.target.display()))?;
        if let Err(e) = std::fs::rename(staging, &self.target) {
            // Put the previous run back rather than leave no run at all.
            let _ = std::fs::rename(&old, &self.target);
            return Err(e).with_context(|| format!("cannot rename into {}", self.target.display()));
        }
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove the previous run {}", old.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_run_appears_only_on_commit_and_replaces_the_old_one() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("run");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old.txt"), "old").unwrap();

        let staged = StagedDir::new(&target).unwrap();
        staged.write("new.txt", b"new").unwrap();
        assert!(
            target.join("old.txt").exists(),
            "old run untouched before commit"
        );
        staged.commit().unwrap();
        assert!(!target.join("old.txt").exists());
        assert_eq!(std::fs::read(target.join("new.txt")).unwrap(), b"new");

        let abandoned = StagedDir::new(&root.path().join("other")).unwrap();
        abandoned.write("x", b"x").unwrap();
        drop(abandoned);
        let left: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the committed run remains");
    }
}
