//! Snapshots of what people read: the list table, the status view and the timeline, rendered
//! from a fixture FeedRollout (tests/fixtures) at a fixed time, without and with colours.

use feedroll_crds::{FeedRollout, FeedRolloutStatus};
use k8s_openapi::jiff::Timestamp;
use kubectl_feedroll::render::{self, Palette};

fn fixture(name: &str) -> FeedRollout {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    // The object as the API server returns it (spec and the status the operator writes).
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn now() -> Timestamp {
    "2026-12-01T03:14:30Z".parse().expect("time")
}

#[test]
fn list_table() {
    let paused = fixture("paused.yaml");
    let mut fresh = paused.clone();
    fresh.metadata.name = Some("fresh".into());
    fresh.metadata.namespace = Some("other".into());
    fresh.status = Some(FeedRolloutStatus::default());
    let items = [paused, fresh];
    insta::assert_snapshot!("list", render::list(&items, false, now(), Palette::PLAIN));
    insta::assert_snapshot!(
        "list_all_namespaces",
        render::list(&items, true, now(), Palette::PLAIN)
    );
}

#[test]
fn status_view() {
    let fr = fixture("paused.yaml");
    insta::assert_snapshot!("status", render::status(&fr, now(), Palette::PLAIN));
}

#[test]
fn timeline_table() {
    let fr = fixture("paused.yaml");
    insta::assert_snapshot!("timeline", render::timeline(&fr, None, Palette::PLAIN));
    let mut empty = fr.clone();
    empty.status = None;
    assert_eq!(
        render::timeline(&empty, None, Palette::PLAIN),
        "No decisions recorded yet.\n"
    );
}

#[test]
fn colours_keep_the_columns_aligned() {
    let fr = fixture("paused.yaml");
    let coloured = render::timeline(&fr, None, Palette { color: true });
    assert!(coloured.contains("\u{1b}[31mfail"), "{coloured}");
    // Without the escapes, the coloured table is the plain one.
    let stripped = strip_ansi(&coloured);
    assert_eq!(stripped, render::timeline(&fr, None, Palette::PLAIN));
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
