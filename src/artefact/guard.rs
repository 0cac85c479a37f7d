//! What a command may write over. The rule for every output (a run folder, an explanation, a
//! scores table): it is never an input, never holds one, never lies inside one, never holds
//! the working directory, and it replaces an existing path only when the tool wrote that path
//! itself (the folder carries the tool's marker file, the table the tool's own columns).
//! Every check runs before any work, so a refused output leaves nothing behind.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The absolute form of `path`, with `.` and `..` applied and symbolic links resolved as far
/// as it exists, so two spellings of one place compare equal even before it is created.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path)
        .with_context(|| format!("cannot resolve the path {}", path.display()))?;
    let absolute = normalise(&absolute);
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let mut out = loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            break real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break existing.to_path_buf(),
        }
    };
    out.extend(rest.iter().rev());
    Ok(out)
}

fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Refuses `output` when it is, holds or lies inside one of `inputs` that exists, or holds the
/// working directory. `what` names the output in the message (e.g. "--out").
pub fn check_apart(what: &str, output: &Path, inputs: &[&Path]) -> Result<()> {
    let out = resolve(output)?;
    // An input that is not there cannot be lost (a run's relative paths read from another
    // folder, say), and naming it would mislead.
    for input in inputs.iter().filter(|i| i.symlink_metadata().is_ok()) {
        let input_resolved = resolve(input)?;
        let relation = if out == input_resolved {
            "is"
        } else if input_resolved.starts_with(&out) {
            "contains"
        } else if out.starts_with(&input_resolved) {
            "lies inside"
        } else {
            continue;
        };
        bail!(
            "{what} {}: {relation} the input {}; write the output somewhere else",
            output.display(),
            input.display()
        );
    }
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    if resolve(&cwd)?.starts_with(&out) {
        bail!(
            "{what} {}: is or contains the working directory, which the tool would have to \
             replace; name a folder of its own",
            output.display()
        );
    }
    Ok(())
}

/// Checks a folder output: apart from `inputs`, and if it exists, a folder that is empty or
/// carries `marker` (the file the tool writes into every such folder).
pub fn check_folder(what: &str, output: &Path, marker: &str, inputs: &[&Path]) -> Result<()> {
    check_apart(what, output, inputs)?;
    if !output.exists() && output.symlink_metadata().is_err() {
        return Ok(());
    }
    if !output.is_dir() {
        bail!(
            "{what} {}: exists and is not a folder; the tool replaces only folders it wrote",
            output.display()
        );
    }
    let empty = std::fs::read_dir(output)
        .with_context(|| format!("cannot read {}", output.display()))?
        .next()
        .is_none();
    if !empty && !output.join(marker).is_file() {
        bail!(
            "{what} {}: exists and was not written by deepinsight (it has no {marker}); the tool \
             never replaces a folder it did not write: move it or choose another name",
            output.display()
        );
    }
    Ok(())
}

/// Checks a file output: apart from `inputs`, not a folder, and if it exists, a file that
/// `is_ours` recognises as the tool's own earlier output.
pub fn check_file(
    what: &str,
    output: &Path,
    inputs: &[&Path],
    is_ours: impl Fn(&Path) -> bool,
) -> Result<()> {
    check_apart(what, output, inputs)?;
    if output.is_dir() {
        bail!(
            "{what} {}: is a folder; name the file to write, e.g. {}",
            output.display(),
            output.join("scores.parquet").display()
        );
    }
    if output.exists() && !is_ours(output) {
        bail!(
            "{what} {}: exists and was not written by deepinsight; the tool never overwrites a \
             file it did not write: move it or choose another name",
            output.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_place_resolve_alike() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let x = resolve(&a.join("x.parquet")).unwrap();
        assert_eq!(resolve(&a.join("../a/x.parquet")).unwrap(), x);
        assert_eq!(resolve(&a.join("./new/../x.parquet")).unwrap(), x);
        assert!(x.is_absolute());
    }

    #[test]
    fn outputs_on_around_or_inside_inputs_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let model = root.path().join("ep/m");
        std::fs::create_dir_all(&model).unwrap();
        let table = root.path().join("in/t.parquet");
        std::fs::create_dir_all(table.parent().unwrap()).unwrap();
        std::fs::write(&table, b"x").unwrap();
        let inputs = [model.as_path(), table.as_path()];
        let refused = |out: PathBuf| check_apart("--out", &out, &inputs).unwrap_err().to_string();
        assert!(refused(model.clone()).contains(" is the input"));
        assert!(refused(root.path().join("ep")).contains("contains the input"));
        assert!(refused(model.join("x")).contains("lies inside the input"));
        assert!(refused(root.path().join("in/../in/t.parquet")).contains(" is the input"));
        check_apart("--out", &root.path().join("elsewhere"), &inputs).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert!(
            check_apart("--out", &cwd, &[])
                .unwrap_err()
                .to_string()
                .contains("working directory")
        );
    }

    #[test]
    fn only_the_tool_s_own_folders_and_files_are_replaced() {
        let root = tempfile::tempdir().unwrap();
        let ours = root.path().join("ours");
        std::fs::create_dir(&ours).unwrap();
        std::fs::write(ours.join("manifest.json"), b"{}").unwrap();
        check_folder("output", &ours, "manifest.json", &[]).unwrap();
        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        check_folder("output", &empty, "manifest.json", &[]).unwrap();
        let theirs = root.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("thesis.tex"), b"x").unwrap();
        let err = check_folder("output", &theirs, "manifest.json", &[]).unwrap_err();
        assert!(
            err.to_string().contains("not written by deepinsight"),
            "{err}"
        );

        let file = root.path().join("f.csv");
        std::fs::write(&file, b"x").unwrap();
        assert!(check_file("--output", &file, &[], |_| false).is_err());
        check_file("--output", &file, &[], |_| true).unwrap();
        let err = check_file("--output", &theirs, &[], |_| true).unwrap_err();
        assert!(err.to_string().contains("is a folder"), "{err}");
    }
}
