//! Experiments: several ranking profiles live at once, users split by a stable hash.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::{BUCKETS, ProfileError, RankingProfile, bucket};

/// Variant name used when a file holds a single profile.
pub const DEFAULT_VARIANT: &str = "default";

/// One arm of an experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variant {
    /// Name carried by responses, events and metrics (`variant` label); lowercase letters,
    /// digits, `-` and `_`, at most 63 characters.
    pub name: String,
    /// Share of users, between 0 and 1; the shares of all variants add up to 1.
    pub share: f64,
    /// The ranking profile this variant serves.
    #[serde(default)]
    pub profile: RankingProfile,
}

/// A set of variants and the salt that assigns users to them.
///
/// File format (YAML or JSON): either a single profile (one variant named `default`, share 1) or
/// `{salt, variants: [{name, share, profile}, ...]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Experiment {
    /// Salt of the assignment hash; change it to reshuffle users between variants.
    #[serde(default)]
    pub salt: String,
    /// The variants, in bucket order.
    pub variants: Vec<Variant>,
}

impl Default for Experiment {
    fn default() -> Self {
        Self::single(RankingProfile::default())
    }
}

impl Experiment {
    /// An experiment with one variant, `default`, serving `profile` to everyone.
    pub fn single(profile: RankingProfile) -> Self {
        Self {
            salt: String::new(),
            variants: vec![Variant {
                name: DEFAULT_VARIANT.to_owned(),
                share: 1.0,
                profile,
            }],
        }
    }

    /// Parses a profile file (YAML or JSON; a single profile or an experiment) and validates it.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ProfileError::Parse(e.to_string()))?;
        let experiment = match &value {
            serde_yaml::Value::Mapping(map) if map.contains_key("variants") => {
                serde_yaml::from_value::<Experiment>(value)
                    .map_err(|e| ProfileError::Parse(e.to_string()))?
            }
            // An empty file is most likely a write in progress; `{}` asks for the defaults.
            serde_yaml::Value::Null => {
                return Err(ProfileError::Parse(
                    "the file is empty (write {} for the default profile)".into(),
                ));
            }
            _ => {
                let profile: RankingProfile = serde_yaml::from_value(value)
                    .map_err(|e| ProfileError::Parse(e.to_string()))?;
                // A single profile reports its fields without the `variants[0].profile.` prefix.
                profile.validate()?;
                Experiment::single(profile)
            }
        };
        experiment.validate()?;
        Ok(experiment)
    }

    /// Checks names, shares and every variant's profile.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.variants.is_empty() {
            return Err(ProfileError::invalid(
                "variants",
                "at least one variant is required",
            ));
        }
        let mut names = HashSet::new();
        let mut total = 0.0;
        for (i, v) in self.variants.iter().enumerate() {
            let at = format!("variants[{i}]");
            let name_ok = !v.name.is_empty()
                && v.name.len() <= 63
                && v.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !name_ok {
                return Err(ProfileError::invalid(
                    format!("{at}.name"),
                    format!(
                        "{:?} must be 1-63 lowercase letters, digits, '-' or '_'",
                        v.name
                    ),
                ));
            }
            if !names.insert(v.name.as_str()) {
                return Err(ProfileError::invalid(
                    format!("{at}.name"),
                    format!("duplicate variant {:?}", v.name),
                ));
            }
            if !(v.share.is_finite() && (0.0..=1.0).contains(&v.share)) {
                return Err(ProfileError::invalid(
                    format!("{at}.share"),
                    format!("must be between 0 and 1, got {}", v.share),
                ));
            }
            total += v.share;
            v.profile
                .validate()
                .map_err(|e| e.within(&format!("{at}.profile")))?;
        }
        if (total - 1.0).abs() > 1e-6 {
            return Err(ProfileError::invalid(
                "variants",
                format!("shares must add up to 1, they add up to {total}"),
            ));
        }
        Ok(())
    }

    /// The variant `user_id` is assigned to: the one whose cumulative share range holds the
    /// user's [`bucket`]. Stable for a given salt and share list.
    pub fn assign(&self, user_id: &str) -> &Variant {
        let b = bucket(&self.salt, user_id);
        let mut upper = 0.0;
        for v in &self.variants {
            upper += v.share * BUCKETS as f64;
            if (b as f64) < upper.round() {
                return v;
            }
        }
        // Rounding can leave the last bucket uncovered; the last variant with a share takes it.
        self.variants
            .iter()
            .rev()
            .find(|v| v.share > 0.0)
            .unwrap_or(&self.variants[self.variants.len() - 1])
    }

    /// The variant called `name`, if any.
    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProfileVersion;

    fn invalid_field(text: &str) -> String {
        match Experiment::parse(text) {
            Err(ProfileError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid-field error, got {other:?}"),
        }
    }

    #[test]
    fn empty_mapping_is_the_version_1_default_and_an_empty_file_is_refused() {
        let e = Experiment::parse("{}").unwrap();
        assert_eq!(
            e.variants[0].profile,
            RankingProfile::defaults(ProfileVersion::V1)
        );
        let v2 = Experiment::parse("version: 2").unwrap();
        assert_eq!(
            v2,
            Experiment::default(),
            "version 2 names the built-in profile"
        );
        assert!(
            matches!(Experiment::parse(""), Err(ProfileError::Parse(m)) if m.contains("empty"))
        );
        assert!(matches!(
            Experiment::parse("# only a comment\n"),
            Err(ProfileError::Parse(_))
        ));
    }

    #[test]
    fn single_profile_keeps_unnamed_fields_at_their_versions_defaults() {
        let e = Experiment::parse("version: 2\nweights: {affinity: 0.5}\nname: fast").unwrap();
        let p = &e.variants[0].profile;
        let d = RankingProfile::default();
        assert_eq!(
            (p.name.as_str(), p.weights.affinity, p.weights.completion),
            ("fast", 0.5, d.weights.completion)
        );
        assert_eq!(e.variants[0].name, DEFAULT_VARIANT);
    }

    #[test]
    fn a_profile_written_for_five_signals_keeps_its_meaning() {
        let old = "weights: {freshness: 0.15, completion: 0.40, engagement: 0.25, affinity: 0.15, embedding: 0.05}\n\
                   completion: {priorMean: 0.3, priorWeight: 20}\n";
        let e = Experiment::parse(old).unwrap();
        let p = &e.variants[0].profile;
        assert_eq!(p.version, ProfileVersion::V1);
        assert_eq!((p.weights.completion, p.weights.brevity), (0.40, 0.0));
        assert_eq!(
            (
                p.affinity.lift,
                p.affinity.saturation,
                p.affinity.follow_boost
            ),
            (0.0, 3.0, 0.3)
        );
        assert_eq!(
            p.completion.bucket_prior_weight,
            crate::V1_BUCKET_PRIOR_WEIGHT
        );
        // Opting in to version 2 takes its defaults for what the file does not name.
        let v2 = Experiment::parse(&format!("version: 2\n{old}")).unwrap();
        let q = &v2.variants[0].profile;
        let d = RankingProfile::default();
        assert_eq!(
            (q.weights.brevity, q.affinity.lift),
            (d.weights.brevity, d.affinity.lift)
        );
        assert_eq!(q.weights.completion, 0.40, "what the file names stays");
        let without = Experiment::parse(&format!("{old}weights: {{brevity: 0}}"));
        assert!(without.is_err(), "a key given twice is refused, not merged");
        assert!(
            matches!(Experiment::parse("version: 3"), Err(ProfileError::Parse(m)) if m.contains("version 3")),
            "an unknown version is refused"
        );
    }

    #[test]
    fn a_version_1_profile_is_written_as_version_1_wrote_it() {
        let p = RankingProfile::defaults(ProfileVersion::V1);
        let json = serde_json::to_value(&p).unwrap();
        for gone in ["version", "brevity"] {
            assert!(json.get(gone).is_none(), "{json}");
        }
        assert!(json["weights"].get("brevity").is_none(), "{json}");
        assert!(json["affinity"].get("lift").is_none(), "{json}");
        assert!(
            json["completion"].get("bucketPriorWeight").is_none(),
            "{json}"
        );
        assert_eq!(json["affinity"]["saturation"], 3.0);
        let back: RankingProfile = serde_json::from_value(json).unwrap();
        assert_eq!(back, p, "lossless");
        // A version-1 profile that sets a version-2 field keeps it, and reads back the same.
        let mut lifted = p.clone();
        lifted.affinity.lift = 0.5;
        let json = serde_json::to_value(&lifted).unwrap();
        assert_eq!(json["affinity"]["lift"], 0.5);
        assert_eq!(
            serde_json::from_value::<RankingProfile>(json).unwrap(),
            lifted
        );
        // Version 2 writes every field.
        let v2 = serde_json::to_value(RankingProfile::default()).unwrap();
        assert_eq!(v2["version"], 2);
        assert_eq!(
            serde_json::from_value::<RankingProfile>(v2).unwrap(),
            RankingProfile::default()
        );
    }

    #[test]
    fn json_experiment_parses() {
        let e = Experiment::parse(
            r#"{"salt":"s1","variants":[{"name":"control","share":0.75},{"name":"treatment","share":0.25,"profile":{"weights":{"embedding":0.3}}}]}"#,
        )
        .unwrap();
        assert_eq!(e.variants.len(), 2);
        assert_eq!(
            e.variant("treatment").unwrap().profile.weights.embedding,
            0.3
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        assert_eq!(
            invalid_field("weights: {affinity: -0.1}"),
            "weights.affinity"
        );
        assert_eq!(
            invalid_field(
                "weights: {freshness: 0, completion: 0, engagement: 0, affinity: 0, embedding: 0, brevity: 0}"
            ),
            "weights"
        );
        assert_eq!(
            invalid_field("freshness: {halfLifeHours: {short: 0, long: 1, live: 1}}"),
            "freshness.halfLifeHours.short"
        );
        assert_eq!(
            invalid_field("variants: [{name: a, share: 0.5}, {name: a, share: 0.5}]"),
            "variants[1].name"
        );
        assert_eq!(
            invalid_field("variants: [{name: a, share: 0.5}, {name: b, share: 0.4}]"),
            "variants"
        );
        assert_eq!(
            invalid_field("variants: [{name: a, share: 1, profile: {weights: {completion: -1}}}]"),
            "variants[0].profile.weights.completion"
        );
        assert_eq!(invalid_field("variants: []"), "variants");
        assert_eq!(
            invalid_field("weights: {freshness: 1e308, completion: 1e308}"),
            "weights",
            "a total that overflows would make every score NaN"
        );
        assert_eq!(
            invalid_field("variants: [{name: 'Big Name', share: 1}]"),
            "variants[0].name"
        );
    }

    #[test]
    fn typos_and_wrong_types_are_parse_errors() {
        assert!(matches!(
            Experiment::parse("weigths: {}"),
            Err(ProfileError::Parse(_))
        ));
        assert!(matches!(
            Experiment::parse("weights: {affinity: high}"),
            Err(ProfileError::Parse(_))
        ));
        assert!(matches!(
            Experiment::parse("[1, 2"),
            Err(ProfileError::Parse(_))
        ));
    }

    #[test]
    fn shares_are_honoured_within_two_percent_over_ten_thousand_users() {
        let e = Experiment::parse("salt: exp1\nvariants: [{name: a, share: 0.5}, {name: b, share: 0.3}, {name: c, share: 0.2}]")
            .unwrap();
        let mut counts = std::collections::HashMap::new();
        for i in 0..10_000 {
            *counts
                .entry(e.assign(&format!("user-{i}")).name.clone())
                .or_insert(0u32) += 1;
        }
        for (name, want) in [("a", 0.5), ("b", 0.3), ("c", 0.2)] {
            let got = f64::from(counts[name]) / 10_000.0;
            assert!(
                (got - want).abs() <= 0.02,
                "variant {name}: {got} of users, want {want} ± 0.02"
            );
        }
    }

    #[test]
    fn zero_share_variant_gets_nobody() {
        let e = Experiment::parse("variants: [{name: a, share: 1}, {name: b, share: 0}]").unwrap();
        assert!((0..5000).all(|i| e.assign(&i.to_string()).name == "a"));
    }

    proptest::proptest! {
        #[test]
        fn assignment_is_total(user in ".{0,40}", share in 0.0f64..=1.0) {
            let e = Experiment {
                salt: "s".into(),
                variants: vec![
                    Variant { name: "a".into(), share, profile: RankingProfile::default() },
                    Variant { name: "b".into(), share: 1.0 - share, profile: RankingProfile::default() },
                ],
            };
            let first = e.assign(&user).name.clone();
            let chosen = e.variant(&first).unwrap();
            proptest::prop_assert!(chosen.share > 0.0);
        }
    }
}
