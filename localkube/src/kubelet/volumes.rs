//! ConfigMap, Secret and emptyDir volumes: what files a volume holds ([`desired`], pure) and
//! writing them to the pod's directory ([`write`]). A container sees them through its
//! `volumeMounts`: paths under a `mountPath` in its args and env are rewritten to the volume's
//! directory (there is no mount namespace; see [`super::env::rewrite_path`]).

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use super::env::{Objects, Source};

/// A volume's files: relative path → content.
pub type Files = BTreeMap<String, Vec<u8>>;

/// A volume that cannot be set up yet: the pod waits in `ContainerCreating`.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {reason}")]
pub struct MountError {
    /// The volume.
    pub volume: String,
    /// Why.
    pub reason: String,
}

/// What one volume is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Files from a ConfigMap or Secret: every key, or `items` (key → path).
    Projected {
        /// ConfigMap or Secret.
        source: Source,
        /// The object's name.
        object: String,
        /// `items`: key → relative path (`None`: every key under its own name).
        items: Option<Vec<(String, String)>>,
        /// `optional`: a missing object or key gives no file instead of an error.
        optional: bool,
    },
    /// An empty directory (`emptyDir`), and any kind this kubelet does not model.
    Empty,
}

/// The pod's volumes by name.
pub fn volumes(pod: &Value) -> Vec<(String, Kind)> {
    let items = |v: &Value| {
        v["items"].as_array().map(|a| {
            a.iter()
                .map(|i| {
                    let key = i["key"].as_str().unwrap_or_default().to_owned();
                    let path = i["path"].as_str().unwrap_or(&key).to_owned();
                    (key, path)
                })
                .collect()
        })
    };
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            let kind = if let Some(cm) = v.get("configMap").filter(|x| x.is_object()) {
                Kind::Projected {
                    source: Source::ConfigMap,
                    object: cm["name"].as_str().unwrap_or_default().to_owned(),
                    items: items(cm),
                    optional: cm["optional"].as_bool().unwrap_or(false),
                }
            } else if let Some(s) = v.get("secret").filter(|x| x.is_object()) {
                Kind::Projected {
                    source: Source::Secret,
                    object: s["secretName"].as_str().unwrap_or_default().to_owned(),
                    items: items(s),
                    optional: s["optional"].as_bool().unwrap_or(false),
                }
            } else {
                Kind::Empty
            };
            (name, kind)
        })
        .collect()
}

/// A relative path that stays inside its volume (no `..`, not absolute, not empty).
fn contained(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// The files volume `name` of kind `kind` should hold now.
pub fn desired(name: &str, kind: &Kind, objects: &dyn Objects) -> Result<Files, MountError> {
    let err = |reason: String| MountError {
        volume: name.to_owned(),
        reason,
    };
    let Kind::Projected {
        source,
        object,
        items,
        optional,
    } = kind
    else {
        return Ok(Files::new());
    };
    let noun = match source {
        Source::ConfigMap => "configmap",
        Source::Secret => "secret",
    };
    let Some(data) = objects.data(*source, object) else {
        return if *optional {
            Ok(Files::new())
        } else {
            Err(err(format!("{noun} \"{object}\" not found")))
        };
    };
    let mut files = Files::new();
    match items {
        None => {
            for (k, v) in data {
                if contained(&k) {
                    files.insert(k, v);
                }
            }
        }
        Some(items) => {
            for (key, path) in items {
                if !contained(path) {
                    return Err(err(format!("invalid path {path:?} for key {key}")));
                }
                match data.get(key) {
                    Some(v) => {
                        files.insert(path.clone(), v.clone());
                    }
                    None if *optional => {}
                    None => {
                        let what = match source {
                            Source::ConfigMap => "config",
                            Source::Secret => "secret",
                        };
                        return Err(err(format!(
                            "{noun} references non-existent {what} key: {key}"
                        )));
                    }
                }
            }
        }
    }
    Ok(files)
}

/// The host directory of each of `container`'s `volumeMounts` (`mountPath` → `volumes_dir/NAME`,
/// or `…/NAME/SUBPATH`).
pub fn mounts(container: &Value, volumes_dir: &Path) -> Vec<(String, PathBuf)> {
    container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let name = m["name"].as_str().filter(|n| contained(n))?;
            let mount_path = m["mountPath"].as_str()?.to_owned();
            let mut dir = volumes_dir.join(name);
            if let Some(sub) = m["subPath"].as_str().filter(|s| contained(s)) {
                dir = dir.join(sub);
            }
            Some((mount_path, dir))
        })
        .collect()
}

/// Makes `dir` hold exactly `files`: each written to a temporary file then renamed over the
/// old one (a reader sees the old or the new content, never half of it), stale files removed.
pub fn write(dir: &Path, files: &Files) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (rel, content) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ));
        std::fs::write(&tmp, content)?;
        std::fs::rename(&tmp, &path)?;
    }
    remove_stale(dir, dir, files)
}

fn remove_stale(root: &Path, dir: &Path, keep: &Files) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            remove_stale(root, &path, keep)?;
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .ok()
            .and_then(Path::to_str)
            .unwrap_or_default();
        if !keep.contains_key(rel) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct One(Option<BTreeMap<String, Vec<u8>>>);

    impl Objects for One {
        fn data(&self, _: Source, _: &str) -> Option<BTreeMap<String, Vec<u8>>> {
            self.0.clone()
        }
    }

    fn data() -> One {
        One(Some(BTreeMap::from([
            ("profile.json".to_owned(), b"{}".to_vec()),
            ("mode".to_owned(), b"fast".to_vec()),
            ("../escape".to_owned(), b"x".to_vec()),
        ])))
    }

    fn cm(items: Option<Vec<(&str, &str)>>, optional: bool) -> Kind {
        Kind::Projected {
            source: Source::ConfigMap,
            object: "cfg".into(),
            items: items.map(|i| i.into_iter().map(|(k, p)| (k.into(), p.into())).collect()),
            optional,
        }
    }

    #[test]
    fn volumes_are_read_from_the_pod_spec() {
        let pod = json!({"spec": {"volumes": [
            {"name": "a", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "p/k"}, {"key": "j"}]}},
            {"name": "b", "secret": {"secretName": "s", "optional": true}},
            {"name": "c", "emptyDir": {}},
        ]}});
        assert_eq!(
            volumes(&pod),
            vec![
                (
                    "a".to_owned(),
                    Kind::Projected {
                        source: Source::ConfigMap,
                        object: "cfg".into(),
                        items: Some(vec![("k".into(), "p/k".into()), ("j".into(), "j".into())]),
                        optional: false
                    }
                ),
                (
                    "b".to_owned(),
                    Kind::Projected {
                        source: Source::Secret,
                        object: "s".into(),
                        items: None,
                        optional: true
                    }
                ),
                ("c".to_owned(), Kind::Empty),
            ]
        );
        assert!(volumes(&json!({"spec": {}})).is_empty());
    }

    #[test]
    fn files_are_every_key_or_the_items_and_stay_inside_the_volume() {
        let all = desired("v", &cm(None, false), &data()).expect("ok");
        assert_eq!(
            all.keys().collect::<Vec<_>>(),
            ["mode", "profile.json"],
            "../escape is skipped"
        );
        let some =
            desired("v", &cm(Some(vec![("mode", "conf/mode")]), false), &data()).expect("ok");
        assert_eq!(
            some,
            Files::from([("conf/mode".to_owned(), b"fast".to_vec())])
        );
        let err =
            desired("v", &cm(Some(vec![("none", "n")]), false), &data()).expect_err("missing key");
        assert_eq!(
            err.to_string(),
            "MountVolume.SetUp failed for volume \"v\" : configmap references non-existent config key: none"
        );
        assert!(
            desired("v", &cm(Some(vec![("none", "n")]), true), &data())
                .expect("optional")
                .is_empty()
        );
        assert!(desired("v", &cm(Some(vec![("mode", "../x")]), false), &data()).is_err());
        let err = desired("v", &cm(None, false), &One(None)).expect_err("missing object");
        assert_eq!(
            err.to_string(),
            "MountVolume.SetUp failed for volume \"v\" : configmap \"cfg\" not found"
        );
        assert!(
            desired("v", &cm(None, true), &One(None))
                .expect("optional")
                .is_empty()
        );
        assert!(
            desired("v", &Kind::Empty, &One(None))
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn mounts_map_to_the_volume_directory_and_sub_paths() {
        let c = json!({"volumeMounts": [
            {"name": "profile", "mountPath": "/etc/feed"},
            {"name": "cfg", "mountPath": "/etc/mode", "subPath": "mode"},
            {"name": "..", "mountPath": "/bad"},
        ]});
        let m = mounts(&c, Path::new("/pods/p/volumes"));
        assert_eq!(
            m,
            vec![
                (
                    "/etc/feed".to_owned(),
                    PathBuf::from("/pods/p/volumes/profile")
                ),
                (
                    "/etc/mode".to_owned(),
                    PathBuf::from("/pods/p/volumes/cfg/mode")
                ),
            ]
        );
    }

    #[test]
    fn writing_replaces_the_files_and_removes_stale_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = dir.path().join("vol");
        write(
            &v,
            &Files::from([("a".into(), b"1".to_vec()), ("d/b".into(), b"2".to_vec())]),
        )
        .expect("write");
        assert_eq!(std::fs::read(v.join("d/b")).expect("read"), b"2");
        write(&v, &Files::from([("a".into(), b"3".to_vec())])).expect("rewrite");
        assert_eq!(std::fs::read(v.join("a")).expect("read"), b"3");
        assert!(!v.join("d/b").exists());
        let left: Vec<_> = std::fs::read_dir(&v)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().into_string().unwrap_or_default())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "no temporary files left: {left:?}");
    }
}
