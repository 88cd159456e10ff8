//! Names of the objects a FeedRollout owns.

use feedroll_crds::FeedRollout;

use super::{DesiredError, Track};

/// Longest name a Service (DNS-1035 label) may have; Deployments and ConfigMaps follow suit.
const MAX_NAME: usize = 63;

/// Names and namespace of a FeedRollout's children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The FeedRollout's name.
    pub rollout: String,
    /// Its namespace.
    pub namespace: String,
}

impl Names {
    /// The names of `fr`'s children; errors without name or namespace.
    pub fn of(fr: &FeedRollout) -> Result<Self, DesiredError> {
        Ok(Self {
            rollout: fr
                .metadata
                .name
                .clone()
                .ok_or(DesiredError::Metadata("name"))?,
            namespace: fr
                .metadata
                .namespace
                .clone()
                .ok_or(DesiredError::Metadata("namespace"))?,
        })
    }

    /// The Deployment of a track: `<rollout>-stable`, `<rollout>-canary`.
    pub fn deployment(&self, track: Track) -> String {
        child(&self.rollout, track.as_str())
    }

    /// The Service of a track: `<rollout>-stable`, `<rollout>-canary`.
    pub fn service(&self, track: Track) -> String {
        child(&self.rollout, track.as_str())
    }

    /// The Service of all pods: the rollout's own name (shortened past 63 characters).
    pub fn main_service(&self) -> String {
        if self.rollout.len() <= MAX_NAME {
            self.rollout.clone()
        } else {
            child(&self.rollout, "all")
        }
    }

    /// The ConfigMap with the profile files: `<rollout>-profile`.
    pub fn config_map(&self) -> String {
        child(&self.rollout, "profile")
    }
}

/// `<base>-<suffix>`, shortened to 63 characters with a hash of `base` when too long.
fn child(base: &str, suffix: &str) -> String {
    let name = format!("{base}-{suffix}");
    if name.len() <= MAX_NAME {
        return name;
    }
    let hash = format!("{:08x}", xxhash_rust::xxh3::xxh3_64(base.as_bytes()) as u32);
    let keep = MAX_NAME - suffix.len() - hash.len() - 2;
    let mut cut = base.len().min(keep);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = base[..cut].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_ones_shortened_stably() {
        let n = Names {
            rollout: "feed".into(),
            namespace: "prod".into(),
        };
        assert_eq!(n.deployment(Track::Canary), "feed-canary");
        assert_eq!(n.service(Track::Stable), "feed-stable");
        assert_eq!(n.main_service(), "feed");
        assert_eq!(n.config_map(), "feed-profile");
        let long = Names {
            rollout: "a".repeat(80),
            namespace: "prod".into(),
        };
        let c = long.deployment(Track::Canary);
        assert!(c.len() <= 63 && c.ends_with("-canary"), "{c}");
        assert_eq!(c, long.deployment(Track::Canary));
        assert_ne!(c, long.deployment(Track::Stable));
        assert!(long.main_service().len() <= 63);
        let other = Names {
            rollout: format!("{}b", "a".repeat(79)),
            namespace: "prod".into(),
        };
        assert_ne!(other.deployment(Track::Canary), c);
    }
}
