//! A tiny reader of the Prometheus text format: sums of samples by name and labels.

/// One sample line: name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`, `_sum`, `_count` suffixes as exposed).
    pub name: String,
    /// Label pairs.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// Parses the sample lines of a Prometheus text exposition (comments skipped; unparsable
/// lines ignored).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (head, Vec::new()),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end?;
        out.push((key.trim_start_matches(',').to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(out)
}

/// Sum of the samples named `name` whose labels include every pair of `matching`.
pub fn sum(samples: &[Sample], name: &str, matching: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            matching
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_by_labels() {
        let text = "# HELP x\n\
            feed_cache_requests_total{rollout=\"none\",result=\"hit\",tier=\"local\",track=\"stable\"} 7\n\
            feed_cache_requests_total{rollout=\"none\",result=\"miss\",tier=\"local\",track=\"stable\"} 3\n\
            feed_ranking_candidates_bucket{le=\"500\"} 2\n\
            feed_ranking_candidates_sum 1234.5\n";
        let s = parse(text);
        assert_eq!(s.len(), 4);
        assert_eq!(
            sum(&s, "feed_cache_requests_total", &[("tier", "local")]),
            10.0
        );
        assert_eq!(
            sum(&s, "feed_cache_requests_total", &[("result", "hit")]),
            7.0
        );
        assert_eq!(sum(&s, "feed_ranking_candidates_sum", &[]), 1234.5);
        assert_eq!(
            sum(&s, "feed_ranking_candidates_bucket", &[("le", "500")]),
            2.0
        );
    }

    #[test]
    fn escaped_quotes_in_labels() {
        let s = parse("m{a=\"x\\\"y\",b=\"z\"} 1\n");
        assert_eq!(
            s[0].labels,
            [("a".into(), "x\"y".into()), ("b".into(), "z".into())]
        );
    }
}
