//! What a traffic weight means in pods: how many canary pods a weight asks for, and which
//! weight a replica count can really express.

/// Weight skew tolerated before a `WeightSkew` warning: the replica count expresses the step's
/// weight within this many percentage points.
pub const SKEW_TOLERANCE: i32 = 5;

/// Canary pods for `weight` percent of `total` pods in replica-ratio traffic: ⌈total × weight /
/// 100⌉, at least 1 while weight > 0 (a canary needs a pod to be judged), 0 at weight 0.
pub fn canary_replicas(total: i32, weight: i32) -> i32 {
    let (total, weight) = (total.max(0), weight.clamp(0, 100));
    if weight == 0 {
        return 0;
    }
    let canary = ((i64::from(total) * i64::from(weight) + 99) / 100).max(1);
    i32::try_from(canary).unwrap_or(i32::MAX)
}

/// The weight `total` pods really give a `weight` step with replica-ratio traffic (the canary's
/// share of the pods, rounded to a percent): 10% of 4 pods is 1 pod, 25%. `None` without pods.
pub fn expressed_weight(total: i32, weight: i32) -> Option<i32> {
    if total <= 0 {
        return None;
    }
    let canary = canary_replicas(total, weight).min(total);
    Some(share(canary, total - canary))
}

/// `part` as a rounded percentage of `part + rest` (0 when both are 0).
pub fn share(part: i32, rest: i32) -> i32 {
    let (part, rest) = (i64::from(part.max(0)), i64::from(rest.max(0)));
    let all = part + rest;
    if all == 0 {
        return 0;
    }
    i32::try_from((part * 200 + all) / (all * 2)).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_percent_of_four_pods_is_a_quarter() {
        assert_eq!(expressed_weight(4, 10), Some(25));
        assert_eq!(expressed_weight(10, 10), Some(10));
        assert_eq!(expressed_weight(3, 50), Some(67));
        assert_eq!(expressed_weight(1, 10), Some(100));
        assert_eq!(expressed_weight(20, 0), Some(0));
        assert_eq!(expressed_weight(20, 100), Some(100));
        assert_eq!(expressed_weight(0, 10), None);
    }

    #[test]
    fn canary_replicas_round_up_and_never_exceed_the_weight_bounds() {
        assert_eq!(canary_replicas(4, 10), 1);
        assert_eq!(canary_replicas(10, 25), 3);
        assert_eq!(canary_replicas(0, 10), 1);
        assert_eq!(canary_replicas(10, 0), 0);
        assert_eq!(canary_replicas(10, 100), 10);
        assert_eq!(canary_replicas(i32::MAX, 100), i32::MAX);
        for total in 1..200 {
            for weight in 1..=100 {
                let c = canary_replicas(total, weight);
                assert!(c >= 1 && c <= total, "{total} {weight} -> {c}");
                // Never fewer pods than the weight asks for.
                assert!(i64::from(c) * 100 >= i64::from(total) * i64::from(weight));
            }
        }
    }

    #[test]
    fn share_rounds_half_up() {
        assert_eq!(share(0, 0), 0);
        assert_eq!(share(1, 3), 25);
        assert_eq!(share(1, 2), 33);
        assert_eq!(share(2, 1), 67);
        assert_eq!(share(1, 199), 1);
        assert_eq!(share(1, 0), 100);
    }
}
