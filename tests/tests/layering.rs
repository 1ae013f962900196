//! No module pair of the server imports each other (issue 26): stage arrows point one way, and a
//! seam (a trait or a hook handed in at start) stands where a callee must call back. Read from
//! the sources: every `crate::a::b` and `super::b` path in a file is a reference from its module
//! to the module it names; a pair of sibling modules (same parent, or two top-level modules)
//! referring to each other fails. A parent and its own children may refer to each other (a
//! module re-exports its children; a child uses its parent's items).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path of a source file: `pipeline/shard.rs` → `pipeline::shard`, `fanout/mod.rs` →
/// `fanout`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<(Vec<String>, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = module_of(path.strip_prefix(root).unwrap());
            out.push((module, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The identifiers of a path after `prefix` (`crate::a::b::C` → `[a, b, C]`).
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    text.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &text[i + prefix.len()..];
            let end =
                rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            rest[..end].split("::").filter(|s| !s.is_empty()).collect()
        })
        .collect()
}

#[test]
fn no_two_server_modules_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    // The longest known module a path names.
    let resolve = |path: Vec<String>| -> Option<Vec<String>> {
        (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p))
    };
    let mut refs: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, text) in &files {
        // Test modules see everything; they are not part of the arrows.
        if module.last().is_some_and(|m| m.ends_with("tests")) {
            continue;
        }
        let mut named = Vec::new();
        for p in paths_after(text, "crate::") {
            named.push(p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
        for p in paths_after(text, "super::") {
            let mut abs = module[..module.len().saturating_sub(1)].to_vec();
            abs.extend(p.iter().map(|s| s.to_string()));
            named.push(abs);
        }
        for n in named {
            if let Some(target) = resolve(n)
                && &target != module
            {
                refs.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    let sibling = |a: &[String], b: &[String]| a.len() == b.len() && a[..a.len() - 1] == b[..b.len() - 1];
    let mut cycles = Vec::new();
    for (a, targets) in &refs {
        for b in targets {
            if a < b && sibling(a, b) && refs.get(b).is_some_and(|t| t.contains(a)) {
                cycles.push(format!("{} <-> {}", a.join("::"), b.join("::")));
            }
        }
    }
    assert!(refs.len() > 20, "the scan found the modules ({} with references)", refs.len());
    assert!(cycles.is_empty(), "module pairs importing each other: {cycles:#?}");
}
