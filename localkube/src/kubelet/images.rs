//! The image table: which local binary a container image runs, and how that binary is told to
//! listen on its pod's IP. There are no registries and no container images here: an image is
//! "pulled" when a rule matches it, and an image no rule matches fails to pull
//! (`ErrImagePull`, then `ImagePullBackOff`).

use std::path::PathBuf;

use thiserror::Error;

/// Environment variable feed-server reads its listen address from.
pub const FEED_LISTEN_ENV: &str = "FEED_LISTEN";

/// Environment variable naming the fault-injection feed-server the default rule runs (the
/// one `make test` builds; the e2e crate reads the same variable).
pub const FAULTY_FEED_SERVER_ENV: &str = "FEEDROLL_FAULTY_FEED_SERVER";

/// The default rule's pattern: every feed-server image, whatever its registry and tag.
pub const FEED_SERVER_PATTERN: &str = "feed-server:*";

/// One image rule: images matching `pattern` run `binary`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRule {
    /// A glob (`*` any run of characters, `?` one character). A pattern without `/` is matched
    /// against the image's last path segment (`ghcr.io/feedroll/feed-server:0.1.0` →
    /// `feed-server:0.1.0`), one with `/` against the whole reference. An image without a tag
    /// or digest is matched as `…:latest`.
    pub pattern: String,
    /// The executable a container of this image runs (its entrypoint).
    pub binary: PathBuf,
    /// Environment variable the binary reads its listen address from: the kubelet sets it to
    /// `podIP:firstContainerPort` unless the container's env sets it (then only its host is
    /// replaced). `None`: the binary is told nothing.
    pub listen_env: Option<String>,
}

/// A `--image` flag that is not `PATTERN=PATH`.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("--image must be PATTERN=PATH (e.g. 'feed-server:*=target/debug/feed-server'), got {0:?}")]
pub struct BadImageRule(pub String);

impl ImageRule {
    /// Parses `PATTERN=PATH` (the `localkube --image` flag). Such rules run feed-server-like
    /// binaries: their listen address goes in [`FEED_LISTEN_ENV`].
    pub fn parse(flag: &str) -> Result<Self, BadImageRule> {
        match flag.split_once('=') {
            Some((pattern, path)) if !pattern.trim().is_empty() && !path.trim().is_empty() => {
                Ok(Self {
                    pattern: pattern.trim().to_owned(),
                    binary: PathBuf::from(path.trim()),
                    listen_env: Some(FEED_LISTEN_ENV.to_owned()),
                })
            }
            _ => Err(BadImageRule(flag.to_owned())),
        }
    }

    /// Whether this rule runs `image`.
    pub fn matches(&self, image: &str) -> bool {
        let image = with_tag(image);
        let subject = if self.pattern.contains('/') {
            image.as_str()
        } else {
            image.rsplit('/').next().unwrap_or(&image)
        };
        glob(self.pattern.as_bytes(), subject.as_bytes())
    }
}

/// The rules, first match wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageTable {
    rules: Vec<ImageRule>,
}

impl ImageTable {
    /// A table of these rules, in order.
    pub fn new(rules: Vec<ImageRule>) -> Self {
        Self { rules }
    }

    /// The rule for `image`, if any (`None`: the image cannot be pulled).
    pub fn resolve(&self, image: &str) -> Option<&ImageRule> {
        self.rules.iter().find(|r| r.matches(image))
    }
}

/// `image` with `:latest` when its last segment has neither a tag nor a digest.
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// Glob match: `*` matches any run of bytes, `?` one byte, anything else itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str) -> ImageRule {
        ImageRule::parse(&format!("{pattern}=/bin/x")).expect("valid rule")
    }

    #[test]
    fn patterns_without_a_slash_match_the_last_segment_with_its_tag() {
        let r = rule(FEED_SERVER_PATTERN);
        for image in [
            "feed-server:0.1.0",
            "ghcr.io/feedroll/feed-server:0.1.0",
            "feed-server",
            "registry:5000/feed-server:canary",
        ] {
            assert!(r.matches(image), "{image}");
        }
        for image in [
            "feed-serverx:1",
            "feed-server-canary:1",
            "nginx:1",
            "feed/x:1",
        ] {
            assert!(!r.matches(image), "{image}");
        }
    }

    #[test]
    fn patterns_with_a_slash_match_the_whole_reference() {
        let r = rule("ghcr.io/*/feed-server:0.?.*");
        assert!(r.matches("ghcr.io/feedroll/feed-server:0.1.0"));
        assert!(!r.matches("docker.io/feedroll/feed-server:0.1.0"));
        assert!(!r.matches("ghcr.io/feedroll/feed-server:1.1.0"));
        assert!(rule("x@sha256:*").matches("x@sha256:abc"));
    }

    #[test]
    fn glob_handles_stars_and_question_marks() {
        let cases = [
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("**", "abc", true),
            ("*c", "abcbc", true),
            ("ab", "abc", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob(p.as_bytes(), t.as_bytes()), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn the_first_matching_rule_wins_and_unknown_images_resolve_to_none() {
        let table = ImageTable::new(vec![rule("feed-server:canary"), rule("feed-server:*")]);
        assert_eq!(
            table
                .resolve("feed-server:canary")
                .map(|r| r.pattern.as_str()),
            Some("feed-server:canary")
        );
        assert_eq!(
            table.resolve("feed-server:1").map(|r| r.pattern.as_str()),
            Some("feed-server:*")
        );
        assert!(table.resolve("nginx:1").is_none());
    }

    #[test]
    fn image_flags_need_a_pattern_and_a_path() {
        for bad in ["", "feed-server:*", "=x", "x=", " = "] {
            assert_eq!(ImageRule::parse(bad), Err(BadImageRule(bad.to_owned())));
        }
        let r = ImageRule::parse("a:*=/usr/bin/a=b").expect("valid");
        assert_eq!(r.binary, PathBuf::from("/usr/bin/a=b"));
        assert_eq!(r.listen_env.as_deref(), Some(FEED_LISTEN_ENV));
    }
}
