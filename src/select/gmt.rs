//! GMT gene-set files (the MSigDB/GSEA format): one set per line, its name, a description and
//! its members, separated by tabs.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// One gene set as written in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneSet {
    pub name: String,
    pub description: String,
    /// Members in file order, without repeats or empty fields.
    pub members: Vec<String>,
    /// 1-based line of the file, for messages.
    pub line: usize,
}

pub fn read(path: &Path) -> Result<Vec<GeneSet>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read gene sets {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses GMT text; `source` names the file in errors. Blank lines and `#` comments are skipped.
/// A set with no members is kept (and reported by the matcher), since MSigDB exports contain
/// them after filtering; a line without a description field or a repeated set name is an error.
pub fn parse(text: &str, source: &str) -> Result<Vec<GeneSet>> {
    let mut sets: Vec<GeneSet> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim_end_matches('\r');
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let mut fields = raw.split('\t');
        let name = fields.next().unwrap_or_default().trim();
        let Some(description) = fields.next() else {
            bail!(
                "{source}:{line}: gene set '{name}' has no tab-separated description and members \
                 (GMT lines are: name<TAB>description<TAB>member<TAB>member...)"
            );
        };
        if name.is_empty() {
            bail!("{source}:{line}: gene set without a name (the first field is empty)");
        }
        if let Some(first) = seen.insert(name.to_string(), line) {
            bail!("{source}:{line}: gene set '{name}' is defined twice (lines {first} and {line})");
        }
        let mut members: Vec<String> = Vec::new();
        for member in fields.map(str::trim).filter(|m| !m.is_empty()) {
            if !members.iter().any(|m| m == member) {
                members.push(member.to_string());
            }
        }
        sets.push(GeneSet {
            name: name.to_string(),
            description: description.trim().to_string(),
            members,
            line,
        });
    }
    if sets.is_empty() {
        bail!("{source}: no gene sets (an empty GMT file?)");
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_members_and_line_endings() {
        let text = "# comment\r\nA\tdesc a\tG1\tG2\tG1\t\r\n\nB\thttp://x\r\nC\t\tP1 \n";
        let sets = parse(text, "t.gmt").unwrap();
        assert_eq!(sets.len(), 3);
        assert_eq!(sets[0].name, "A");
        assert_eq!(
            sets[0].members,
            vec!["G1", "G2"],
            "repeats and empty fields dropped"
        );
        assert_eq!(sets[0].line, 2);
        assert!(
            sets[1].members.is_empty(),
            "an empty set is kept for the report"
        );
        assert_eq!(sets[1].description, "http://x");
        assert_eq!(sets[2].members, vec!["P1"]);
    }

    #[test]
    fn malformed_lines_are_named() {
        let err = parse("A\td\tG1\nB only a name\n", "x.gmt").unwrap_err();
        assert!(err.to_string().contains("x.gmt:2"), "{err}");
        let err = parse("A\td\tG1\nA\td\tG2\n", "x.gmt").unwrap_err();
        assert!(err.to_string().contains("lines 1 and 2"), "{err}");
        assert!(parse("\n# nothing\n", "x.gmt").is_err());
    }
}
