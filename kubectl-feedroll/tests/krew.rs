//! The krew manifest (`plugins/krew/feedroll.yaml`) installs this crate's binary under the
//! plugin name kubectl looks for, at this crate's version.

use serde_yaml::Value;

#[test]
fn the_krew_manifest_matches_the_crate() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/krew/feedroll.yaml");
    let text = std::fs::read_to_string(path).expect("the krew manifest");
    let manifest: Value = serde_yaml::from_str(&text).expect("YAML");
    assert_eq!(manifest["kind"], "Plugin");
    // `kubectl feedroll` runs `kubectl-feedroll`: the plugin name is the binary name's tail.
    assert_eq!(manifest["metadata"]["name"], "feedroll");
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest["spec"]["version"].as_str(), Some(version.as_str()));
    let platforms = manifest["spec"]["platforms"]
        .as_sequence()
        .expect("platforms");
    assert!(!platforms.is_empty());
    for p in platforms {
        assert_eq!(p["bin"], "kubectl-feedroll", "{p:?}");
        let uri = p["uri"].as_str().unwrap_or_default();
        assert!(uri.contains(&version) && uri.ends_with(".tar.gz"), "{uri}");
        let sha = p["sha256"].as_str().unwrap_or_default();
        assert!(
            sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "{sha}"
        );
    }
}
