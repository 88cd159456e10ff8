//! The layers of the crate and the check that imports point one way (a test-only module: it
//! reads the crate's own sources).
//!
//! ```text
//! edge (main, server, config, demo)
//!   → http (handlers, extractors, errors, OpenAPI)
//!     → use cases (feed: the read service; write: catalog and users; exposure: tune; auth, …)
//!       → services (cache, shed, metrics)
//!         → domain (ranking, learning, affinity, model, served, time, vocabulary) — no I/O but
//!           through `Store`
//!           → store (the `Store` trait, Redis and embedded), and `prefetch` (a CPU-cache
//!             helper with no dependency, which every layer may use)
//! ```
//!
//! A module may name (`crate::x`) modules of its own layer or below, never above. The store
//! names the domain types it persists ([`STORED_VOCABULARY`]). Within a directory no two files
//! name each other. Imports that still point up are listed in [`KNOWN_UPWARD`] with the issue
//! that removes them; the check fails when one of them is gone, so the list only shrinks.

#![cfg(test)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top first, each with its top-level modules.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "edge",
        &["main", "lib", "server", "config", "demo", "layers"],
    ),
    ("http", &["http"]),
    (
        "use cases",
        &[
            "feed",
            "write",
            "ingest",
            "exposure",
            "auth",
            "experiments",
            "reload",
            "state",
            "warmup",
        ],
    ),
    (
        "services",
        &[
            "cache",
            "stored_snapshot",
            "peer_heads",
            "shed",
            "single_flight",
            "metrics",
        ],
    ),
    (
        "domain",
        &[
            "ranking",
            "learning",
            "affinity",
            "model",
            "schema",
            "served",
            "time",
            "vocabulary",
        ],
    ),
    ("store", &["store", "prefetch"]),
];

/// Modules whose types the store persists (catalog entries, learned values, exposure-log
/// entries) or hands back (catalog entries with their interned keys) and may therefore name
/// although they sit above it.
const STORED_VOCABULARY: &[&str] = &[
    "model",
    "learning",
    "affinity",
    "exposure",
    "time",
    "vocabulary",
];

/// Upward imports still present: (from module, to module, why it stays for now).
const KNOWN_UPWARD: &[(&str, &str, &str)] = &[(
    "learning",
    "exposure",
    "event deltas carry the exposure-log entries; the event write path (issue #16) moves them",
)];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its trailing test module.
fn code(text: &str) -> String {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]" || l.starts_with(' '))
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every identifier that follows `prefix` in `code`.
fn named_after<'a>(code: &'a str, prefix: &str) -> BTreeSet<&'a str> {
    code.match_indices(prefix)
        .filter_map(|(i, _)| {
            let rest = &code[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (end > 0).then(|| &rest[..end])
        })
        .collect()
}

struct SourceFile {
    /// Path under `src/`, e.g. `ranking/pipeline.rs`.
    rel: String,
    code: String,
}

impl SourceFile {
    /// The top-level module: `ranking` for `ranking/pipeline.rs`, `feed` for `feed.rs`.
    fn module(&self) -> &str {
        let first = self.rel.split('/').next().unwrap_or_default();
        first.strip_suffix(".rs").unwrap_or(first)
    }

    /// The directory and the sibling name of a file inside a directory module.
    fn sibling(&self) -> Option<(&str, &str)> {
        let (dir, file) = self.rel.rsplit_once('/')?;
        Some((dir, file.strip_suffix(".rs")?))
    }
}

fn crate_sources() -> Vec<SourceFile> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let rel = p
                .strip_prefix(&src)
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            Some(SourceFile {
                rel,
                code: code(&text),
            })
        })
        .collect()
}

/// Every (from, to) pair of top-level modules where `from` names `to` against the layers.
fn upward_imports(files: &[SourceFile]) -> BTreeMap<(String, String), Vec<String>> {
    let mut found: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in files {
        let from = f.module();
        let Some(from_layer) = layer_of(from) else {
            continue;
        };
        for to in named_after(&f.code, "crate::") {
            let Some(to_layer) = layer_of(to) else {
                continue;
            };
            let stored = from == "store" && STORED_VOCABULARY.contains(&to);
            if to_layer < from_layer && !stored {
                found
                    .entry((from.to_owned(), to.to_owned()))
                    .or_default()
                    .push(f.rel.clone());
            }
        }
    }
    found
}

#[test]
fn every_module_has_a_layer() {
    let files = crate_sources();
    assert!(files.len() > 50, "the sources were not found");
    let homeless: BTreeSet<&str> = files
        .iter()
        .map(SourceFile::module)
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        homeless.is_empty(),
        "give these modules a layer: {homeless:?}"
    );
}

#[test]
fn imports_point_down_the_layers() {
    let mut found = upward_imports(&crate_sources());
    for (from, to, why) in KNOWN_UPWARD {
        assert!(
            found
                .remove(&((*from).to_owned(), (*to).to_owned()))
                .is_some(),
            "{from} → {to} is gone ({why}): remove it from KNOWN_UPWARD"
        );
    }
    assert!(
        found.is_empty(),
        "imports pointing up the layers: {found:#?}"
    );
}

#[test]
fn no_two_files_of_a_directory_name_each_other() {
    let files = crate_sources();
    let mut names: BTreeSet<(String, String, String)> = BTreeSet::new();
    for f in &files {
        let Some((dir, me)) = f.sibling() else {
            continue;
        };
        let dir_path = format!("crate::{}::", dir.replace('/', "::"));
        let mut siblings = named_after(&f.code, &dir_path);
        if me != "mod" {
            siblings.extend(named_after(&f.code, "super::"));
        }
        for other in siblings {
            if other != me {
                names.insert((dir.to_owned(), me.to_owned(), other.to_owned()));
            }
        }
    }
    let cycles: Vec<_> = names
        .iter()
        .filter(|(dir, a, b)| a < b && names.contains(&(dir.clone(), b.clone(), a.clone())))
        .collect();
    assert!(
        cycles.is_empty(),
        "files that import each other: {cycles:?}"
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    let files = [SourceFile {
        rel: "ranking/pipeline.rs".into(),
        code: code("//! see crate::http\nuse crate::http::feed::MAX_LIMIT;\n"),
    }];
    let found = upward_imports(&files);
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        [&("ranking".to_owned(), "http".to_owned())]
    );
    // Comments and the test module do not count.
    assert!(
        upward_imports(&[SourceFile {
            rel: "ranking/pipeline.rs".into(),
            code: code("//! crate::http\n#[cfg(test)]\nmod tests { use crate::feed; }\n"),
        }])
        .is_empty()
    );
}
