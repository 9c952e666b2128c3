//! The layering ARCHITECTURE.md promises, read from the sources: no file of any crate imports
//! a file that imports it back, and in this crate no shared folder imports a role or
//! `context` (roles → context → jobs, budget → cluster; requests and error below all).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`jobs::queue`; "" for the crate root) → source without tests and comments.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source folder readable") {
            let path = entry.expect("source entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(src)
                    .expect("under src")
                    .with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                let text = std::fs::read_to_string(&path).expect("source readable");
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                let code: String = code
                    .lines()
                    .map(|l| l.split("//").next().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n");
                out.insert(parts.join("::"), code);
            }
        }
    }
    out
}

/// Every path a `use` or an expression names from `crate::`, `super::` or `self::`, with
/// groups (`use crate::{a, b::c}`) expanded.
fn paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        let mut rest = code;
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().last();
            rest = &rest[at..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                rest = &rest[start.len()..];
                continue;
            }
            let (path, used) = read_path(rest);
            found.extend(path);
            rest = &rest[used.max(start.len())..];
        }
    }
    found
}

/// Reads one path at the start of `s`; returns its expansions and the bytes read.
fn read_path(s: &str) -> (Vec<String>, usize) {
    let head_len = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    let head = s[..head_len].trim_end_matches(':').to_string();
    if !s[head_len..].starts_with('{') {
        return (vec![head], head_len);
    }
    let (mut depth, mut end) = (0, head_len);
    for (i, c) in s[head_len..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            end = head_len + i + 1;
            break;
        }
    }
    let inner = &s[head_len + 1..end - 1];
    let (mut items, mut depth, mut from) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[from..]);
    let mut out = Vec::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        let (sub, _) = read_path(item);
        out.extend(sub.into_iter().map(|p| format!("{head}::{p}")));
    }
    (out, end)
}

/// The module `path` names, seen from module `from`, if it is one of `known`.
fn resolve(from: &str, path: &str, known: &BTreeSet<String>) -> Option<String> {
    let mut parts: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = from.split("::").filter(|p| !p.is_empty()).collect();
    match parts.first() {
        Some(&"crate") => base.clear(),
        Some(&"self") => {}
        Some(&"super") => {
            while parts.first() == Some(&"super") {
                base.pop();
                parts.remove(0);
            }
            parts.insert(0, "super");
        }
        _ => return None,
    }
    parts.remove(0);
    (0..=parts.len()).rev().find_map(|n| {
        let name = base
            .iter()
            .chain(&parts[..n])
            .copied()
            .collect::<Vec<_>>()
            .join("::");
        known.contains(&name).then_some(name)
    })
}

/// File → the files it imports (not itself or its ancestors; "" is the crate root).
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = modules(src);
    let known: BTreeSet<String> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(m, code)| {
            let to = paths(code)
                .iter()
                .filter_map(|p| resolve(m, p, &known))
                .filter(|t| t != m && !m.starts_with(&format!("{t}::")))
                .collect();
            (m.clone(), to)
        })
        .collect()
}

fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        v: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == v) {
            let mut c = path[i..].to_vec();
            c.push(v.to_string());
            return Some(c);
        }
        if !done.insert(v.to_string()) {
            return None;
        }
        path.push(v.to_string());
        for w in g.get(v).into_iter().flatten() {
            if let Some(c) = visit(w, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|v| visit(v, graph, &mut Vec::new(), &mut done))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn no_file_of_any_crate_imports_one_that_imports_it_back() {
    let root = workspace();
    let mut sources = vec![root.join("src")];
    for entry in std::fs::read_dir(root.join("crates")).expect("crates folder") {
        sources.push(entry.expect("crate").path().join("src"));
    }
    assert!(sources.len() >= 10, "found {} crates", sources.len());
    for src in sources {
        let graph = imports(&src);
        assert!(graph.len() > 1, "{} has no modules", src.display());
        assert_eq!(
            circle(&graph),
            None,
            "a circle of files in {}",
            src.display()
        );
    }
}

#[test]
fn the_worker_shared_folders_import_no_role_and_no_context() {
    let graph = imports(&workspace().join("crates/candlepipe-worker/src"));
    let top = |m: &str| m.split("::").next().unwrap_or_default().to_string();
    let layer = |folder: &str| match folder {
        "ingest" | "fill" | "analyze" | "stream" | "gateway" => Some(4),
        "context" => Some(3),
        "jobs" | "budget" => Some(2),
        "cluster" => Some(1),
        "requests" | "error" => Some(0),
        _ => None,
    };
    let mut checked = 0;
    for (from, tos) in graph.iter().filter(|(m, _)| !m.is_empty()) {
        let Some(here) = layer(&top(from)) else {
            panic!("{from} is in no layer: add its folder to ARCHITECTURE.md and this test")
        };
        for to in tos.iter().filter(|t| top(t) != top(from)) {
            let there = layer(&top(to));
            assert!(
                there.is_some_and(|there| there < here),
                "{from} imports {to:?}: a layer may only import the ones below it (\"\" is lib.rs)"
            );
            checked += 1;
        }
    }
    // The roles, context and jobs import their services: the check saw them.
    assert!(checked > 30, "only {checked} imports across folders found");
    assert!(graph["jobs::queue"].contains("cluster::stats"));
    assert!(graph["ingest"].contains("ingest::waiters"));
}
