//! The module graph stays a tree of layers: no two top-level modules import each other
//! (directly or round a loop), no two files of one folder do, and only the command line and
//! the benchmarks reach into the server. Read from the sources' `crate::`, `super::` and
//! `self::` paths, test modules left out.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (e.g. `serve::served`) -> the modules its code names.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn module_files(dir: &Path, prefix: &[String], out: &mut Vec<(Vec<String>, bool, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(name);
            module_files(&path, &inner, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Test modules may reach anywhere.
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            let is_mod = name == "mod";
            let mut module = prefix.to_vec();
            if !is_mod && !(prefix.is_empty() && (name == "lib" || name == "main")) {
                module.push(name);
            }
            out.push((module, is_mod, code));
        }
    }
}

/// Every path a file names that starts at `crate`, `super` or `self`, with `{a, b}` groups
/// opened one level.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .any(|s| rest.starts_with(s));
        let boundary = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        if starts && boundary {
            let mut end = i;
            while end < bytes.len() && (bytes[end].is_alphanumeric() || "_:".contains(bytes[end])) {
                end += 1;
            }
            let path: String = bytes[i..end].iter().collect();
            let parts: Vec<String> = path
                .split("::")
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            if end < bytes.len() && bytes[end] == '{' {
                let close = bytes[end..].iter().position(|&c| c == '}').unwrap_or(0) + end;
                let group: String = bytes[end + 1..close].iter().collect();
                for item in group.split(',') {
                    let head = item.trim().split("::").next().unwrap_or("").trim();
                    if !head.is_empty() && head != "self" {
                        let mut p = parts.clone();
                        p.push(head.to_string());
                        paths.push(p);
                    }
                }
            }
            paths.push(parts);
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    paths
}

fn graph() -> Graph {
    let mut files = Vec::new();
    module_files(&common::root().join("src"), &[], &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(m, _, _)| m.clone()).collect();
    let resolve = |parts: &[String]| -> Option<Vec<String>> {
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].to_vec())
            .find(|m| modules.contains(m))
    };
    let mut graph = Graph::new();
    for (module, _, code) in &files {
        let here = graph.entry(module.join("::")).or_default();
        for path in named_paths(code) {
            let (mut base, mut rest) = match path[0].as_str() {
                "crate" => (Vec::new(), &path[1..]),
                // A folder's mod.rs is its module; another file's `self` is its own module.
                "self" => (module.clone(), &path[1..]),
                // `super` of a file is its folder's module; of a mod.rs, the folder's parent.
                _ => (
                    module[..module.len().saturating_sub(1)].to_vec(),
                    &path[1..],
                ),
            };
            while rest.first().is_some_and(|p| p == "super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            if let Some(target) = resolve(&base)
                && &target != module
                && !target.is_empty()
            {
                here.insert(target.join("::"));
            }
        }
    }
    graph
}

/// A loop in `graph`, as the modules round it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                None => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str())
            && let Some(c) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap()
}

/// Top-level module -> the other top-level modules it names.
fn layers(graph: &Graph) -> Graph {
    let mut out = Graph::new();
    for (from, targets) in graph {
        for to in targets {
            if !from.is_empty() && top(from) != top(to) {
                out.entry(top(from).to_string())
                    .or_default()
                    .insert(top(to).to_string());
            }
        }
    }
    out
}

#[test]
fn top_level_modules_import_each_other_in_one_direction_only() {
    let layers = layers(&graph());
    assert!(
        layers.get("pipeline").is_some_and(|t| t.contains("model")),
        "the reader found no edges: {layers:?}"
    );
    if let Some(cycle) = find_cycle(&layers) {
        panic!(
            "the top-level modules import round a loop: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn files_of_one_folder_import_each_other_in_one_direction_only() {
    let graph = graph();
    let mut siblings = Graph::new();
    for (from, targets) in &graph {
        let folder = |m: &str| m.rsplit_once("::").map(|(f, _)| f.to_string());
        for to in targets {
            if folder(from).is_some() && folder(from) == folder(to) {
                siblings.entry(from.clone()).or_default().insert(to.clone());
            }
        }
    }
    if let Some(cycle) = find_cycle(&siblings) {
        panic!(
            "files of one folder import round a loop: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn only_the_command_line_and_the_benchmarks_reach_into_the_server() {
    let layers = layers(&graph());
    let into_serve: Vec<&String> = layers
        .iter()
        .filter(|(from, to)| to.contains("serve") && !["cli", "bench"].contains(&from.as_str()))
        .map(|(from, _)| from)
        .collect();
    assert!(
        into_serve.is_empty(),
        "lower modules import serve: {into_serve:?}"
    );
    assert!(
        layers.values().all(|to| !to.contains("cli")),
        "a module imports cli: {layers:?}"
    );
}

#[test]
fn the_reader_finds_a_loop_where_there_is_one() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g).unwrap(),
        ["a", "b", "c", "a"].map(String::from).to_vec()
    );
    let paths = named_paths("use crate::serve::{served::X, preprocess};\nlet y = super::z::w;");
    assert!(paths.contains(&["crate", "serve", "served"].map(String::from).to_vec()));
    assert!(paths.contains(&["crate", "serve", "preprocess"].map(String::from).to_vec()));
    assert!(paths.contains(&["super", "z", "w"].map(String::from).to_vec()));
}

#[test]
fn http_handlers_reach_the_model_only_through_its_face() {
    let src = common::root().join("src/serve");
    for file in ["http.rs", "kserve.rs"] {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        for inner in [
            "batcher.submit",
            "pool.infer",
            "preprocess::prepare",
            "preprocess::render_rows",
            "preprocess::predictions",
            "explainer::explain(",
        ] {
            assert!(
                !text.contains(inner),
                "src/serve/{file} calls {inner}: handlers go through ServedModel's methods"
            );
        }
    }
}

/// The public API is the stages and a few units a library user calls by name; every other
/// module is `pub(crate)` behind its stage's `pub use` list. A new `pub mod` must be added here
/// on purpose.
#[test]
fn only_the_stages_and_named_units_are_public_modules() {
    let allowed: BTreeSet<&str> = [
        "bench",
        "cli",
        "config",
        "evaluate",
        "explain",
        "explain::cam",
        "export",
        "export::check",
        "export::int8",
        "export::tensorrt",
        "init",
        "layout",
        "mapping",
        "model",
        "omics",
        "onnxrt",
        "pipeline",
        "render",
        "run",
        "score",
        "select",
        "serve",
        "synth",
    ]
    .into_iter()
    .collect();
    let mut files = Vec::new();
    module_files(&common::root().join("src"), &[], &mut files);
    let mut public = BTreeSet::new();
    for (module, _, code) in &files {
        for line in code.lines() {
            if let Some(name) = line
                .strip_prefix("pub mod ")
                .and_then(|r| r.strip_suffix(';'))
            {
                let mut path = module.clone();
                path.push(name.to_string());
                public.insert(path.join("::"));
            }
        }
    }
    let public: BTreeSet<&str> = public.iter().map(String::as_str).collect();
    assert_eq!(public, allowed, "public modules differ from the list");
}
