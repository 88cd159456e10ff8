//! The CEL rules (`x-kubernetes-validations`) of the CRD, evaluated client-side with kube's CEL
//! engine, exactly as written in the generated schema.

use std::cell::RefCell;
use std::rc::Rc;

use kube::core::cel::{CompiledSchema, compile_schema, validate_compiled};
use serde_json::Value;

use super::Problem;

thread_local! {
    /// The schema last validated against on this thread and its compiled rules: compiling every
    /// CEL rule is most of a validation's cost (about a second in debug builds), and callers
    /// (the local API server on every write, `lint` over many files) reuse one schema.
    static COMPILED: RefCell<Option<(Value, Rc<CompiledSchema>)>> = const { RefCell::new(None) };
}

/// `schema` compiled, from this thread's cache when it is the schema compiled last.
fn compiled(schema: &Value) -> Rc<CompiledSchema> {
    COMPILED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if let Some((known, rules)) = cached.as_ref()
            && known == schema
        {
            return Rc::clone(rules);
        }
        let rules = Rc::new(compile_schema(schema));
        *cached = Some((schema.clone(), Rc::clone(&rules)));
        rules
    })
}

/// Every CEL rule `object` breaks.
pub fn validate(schema: &Value, object: &Value) -> Vec<Problem> {
    match validate_compiled(&compiled(schema), object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| Problem {
                path: e.field_path.trim_start_matches('.').to_owned(),
                line: None,
                message: e.message,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use kube::core::cel::{compile_schema, estimate_rule_cost};
    use serde_json::json;

    use super::*;
    use crate::validate::schema::crd_schema;

    fn object(spec: Value) -> Value {
        let mut spec = spec;
        spec["template"] = json!({"spec": {"containers": [{"name": "feed", "image": "feed:1"}]}});
        json!({"apiVersion": "feedroll.dev/v1alpha1", "kind": "FeedRollout", "metadata": {"name": "x"}, "spec": spec})
    }

    fn messages(spec: Value) -> Vec<String> {
        validate(&crd_schema().unwrap(), &object(spec))
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn each_rule_fires_in_the_cel_layer_with_its_message() {
        let cases = [
            (
                json!({"strategy": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 20}]}}),
                "setWeight values must never decrease",
            ),
            (
                json!({"strategy": {"steps": []}}),
                "needs at least one step",
            ),
            (
                json!({"strategy": {"steps": [{"setWeight": 5, "pause": {}}]}}),
                "exactly one of setWeight or pause",
            ),
            (
                json!({"strategy": {"steps": [{}]}}),
                "exactly one of setWeight or pause",
            ),
            (
                json!({"strategy": {"steps": [{"pause": {"duration": "5 min"}}]}}),
                "must be a duration",
            ),
            (
                json!({"strategy": {"traffic": {"replicaRatio": {}, "inApp": {}}}}),
                "choose one traffic mode",
            ),
            (
                json!({"analysis": {"interval": "1x"}}),
                "must be a duration",
            ),
            (
                json!({"analysis": {"checks": [{"name": "a", "preset": "errorRate", "min": 2, "max": 1}]}}),
                "min must be less than or equal to max",
            ),
            (
                json!({"analysis": {"checks": [{"name": "a", "max": 1}]}}),
                "exactly one of preset, query or counts",
            ),
            (
                json!({"analysis": {"checks": [{"name": "a", "preset": "errorRate"}]}}),
                "needs a threshold",
            ),
            (
                json!({"analysis": {"checks": [{"name": "a", "preset": "errorRate", "quantile": 0.9, "max": 1}]}}),
                "quantile applies only",
            ),
            (
                json!({"analysis": {"checks": [{"name": "a", "preset": "errorRate", "max": 1}, {"name": "a", "preset": "errorRate", "max": 1}]}}),
                "names must be unique",
            ),
            (
                json!({"analysis": {"prometheus": {"address": "ftp://x"}}}),
                "http:// or https://",
            ),
            (
                json!({"analysis": {"checks": [{"name": "finish", "preset": "completionRate", "min": 0.2}]}}),
                "check finish: preset completionRate needs strategy.traffic.inApp",
            ),
            (
                json!({"strategy": {"traffic": {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}}, "analysis": {"checks": [{"name": "errors", "preset": "errorRate", "max": 0.01}, {"name": "likes", "preset": "engagementRate", "min": 0.01, "compare": {"mode": "difference"}}]}}),
                "check likes: preset engagementRate needs strategy.traffic.inApp",
            ),
        ];
        for (spec, want) in cases {
            let got = messages(spec.clone());
            assert!(
                got.iter().any(|m| m.contains(want)),
                "{spec}: want {want:?}, got {got:?}"
            );
        }
        assert!(messages(json!({"strategy": {"steps": [{"setWeight": 10}, {"pause": {"duration": "1h30m"}}, {"setWeight": 10}, {"setWeight": 100}]}})).is_empty());
        // Engagement presets are fine in-app, and other presets anywhere.
        assert!(messages(json!({"strategy": {"traffic": {"inApp": {}}}, "analysis": {"checks": [{"name": "finish", "preset": "completionRate", "min": 0.2}]}})).is_empty());
        assert!(messages(json!({"analysis": {"checks": [{"name": "errors", "preset": "errorRate", "max": 0.01}]}})).is_empty());
    }

    /// The rules of sequential checks and `untilConfident` steps, each in CEL and again when the
    /// operator resolves the spec, with the same message.
    #[test]
    fn sequential_rules_fire_in_cel_and_in_code() {
        let seq = |extra: Value| {
            let mut c = json!({"name": "s", "preset": "errorRate", "compare": {"mode": "sequential", "minEffect": 0.01}});
            for (k, v) in extra.as_object().into_iter().flatten() {
                c[k] = v.clone();
            }
            json!({"analysis": {"checks": [c]}})
        };
        let counts = json!({"numerator": "sum(x)", "denominator": "sum(y)"});
        let cases = [
            (
                seq(json!({"compare": {"mode": "sequential", "minEffect": 0.01, "alpha": 0.9}})),
                "alpha must be in (0, 0.5]",
            ),
            (
                seq(json!({"compare": {"mode": "sequential", "minEffect": 0.01, "alpha": 0.0}})),
                "alpha must be in (0, 0.5]",
            ),
            (
                seq(json!({"compare": {"mode": "sequential", "minEffect": 0.0}})),
                "minEffect must be in (0, 1)",
            ),
            (
                seq(json!({"compare": {"mode": "sequential"}})),
                "mode sequential needs minEffect",
            ),
            (
                seq(json!({"compare": {"mode": "ratio", "alpha": 0.05}, "min": 0.9})),
                "apply only to mode sequential",
            ),
            (seq(json!({"max": 0.01})), "remove min and max"),
            (
                seq(json!({"preset": "latencyQuantile"})),
                "sequential needs counts of events per trial",
            ),
            (
                seq(json!({"preset": "creatorDiversity"})),
                "sequential needs counts of events per trial",
            ),
            (
                seq(json!({"tier": "rollback"})),
                "cannot be on the rollback tier",
            ),
            (
                json!({"analysis": {"checks": [{"name": "c", "counts": counts, "compare": {"mode": "sequential", "minEffect": 0.01}}]}}),
                "needs compare: {mode: sequential, minEffect, direction}",
            ),
            (
                json!({"analysis": {"checks": [{"name": "c", "counts": counts, "preset": "errorRate", "compare": {"mode": "sequential", "minEffect": 0.01, "direction": "higher-is-worse"}}]}}),
                "exactly one of preset, query or counts",
            ),
            (
                json!({"strategy": {"steps": [{"pause": {"untilConfident": true}}]}}),
                "needs max",
            ),
            (
                json!({"strategy": {"steps": [{"pause": {"untilConfident": true, "max": "1h", "duration": "1h"}}]}}),
                "needs max",
            ),
            (
                json!({"strategy": {"steps": [{"pause": {"duration": "1h", "max": "1h"}}]}}),
                "max applies only with untilConfident",
            ),
        ];
        // The CEL layer is slow to evaluate (seconds per object): every case in one object.
        let mut checks = Vec::new();
        let mut steps = Vec::new();
        for (i, (spec, _)) in cases.iter().enumerate() {
            for c in spec["analysis"]["checks"].as_array().into_iter().flatten() {
                let mut c = c.clone();
                c["name"] = json!(format!("c{i}"));
                checks.push(c);
            }
            steps.extend(
                spec["strategy"]["steps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        let got = messages(json!({"strategy": {"steps": steps}, "analysis": {"checks": checks}}));
        for (spec, want) in cases {
            assert!(
                got.iter().any(|m| m.contains(want)),
                "{spec}: want {want:?}, got {got:?}"
            );
            let mut full = spec.clone();
            full["template"] =
                json!({"spec": {"containers": [{"name": "feed", "image": "feed:1"}]}});
            let parsed: crate::FeedRolloutSpec = serde_json::from_value(full).expect("parses");
            let resolved = parsed
                .resolved_plan()
                .expect_err("the operator rejects it too");
            assert!(
                resolved.to_string().contains(want),
                "{spec}: want {want:?}, got {resolved}"
            );
        }
        let good = json!({
            "strategy": {"traffic": {"inApp": {}}, "steps": [{"setWeight": 10}, {"pause": {"untilConfident": true, "max": "2h"}}]},
            "analysis": {"checks": [
                {"name": "errors", "preset": "errorRate", "compare": {"mode": "sequential", "minEffect": 0.01}},
                {"name": "finish", "preset": "completionRate", "compare": {"mode": "sequential", "alpha": 0.5, "minEffect": 0.02, "direction": "lower-is-worse"}},
                {"name": "c", "counts": counts, "compare": {"mode": "sequential", "minEffect": 0.01, "direction": "higher-is-worse"}, "tier": "advisory"},
                {"name": "tail", "preset": "longTailShare", "compare": {"mode": "sequential", "minEffect": 0.02}},
                {"name": "creators", "preset": "creatorDiversity", "compare": {"mode": "ratio"}, "min": 0.95}
            ]}
        });
        assert_eq!(messages(good.clone()), Vec::<String>::new());
        let mut full = good;
        full["template"] = json!({"spec": {"containers": [{"name": "feed", "image": "feed:1"}]}});
        let parsed: crate::FeedRolloutSpec = serde_json::from_value(full).expect("parses");
        let plan = parsed.resolved_plan().expect("resolves");
        let errors = &plan
            .analysis
            .checks
            .iter()
            .find(|c| c.name == "errors")
            .expect("check")
            .sequential;
        assert_eq!(
            *errors,
            Some(crate::SequentialTest {
                alpha: 0.05,
                min_effect: 0.01,
                direction: crate::Direction::HigherIsWorse
            })
        );
        assert_eq!(
            plan.strategy.steps[1],
            crate::ResolvedStep::UntilConfident(std::time::Duration::from_secs(7200))
        );
    }

    #[test]
    fn prometheus_auth_and_tls_rules_fire_with_their_messages() {
        let prom = |p: Value| json!({"analysis": {"prometheus": p}});
        let secret = json!({"name": "prom", "key": "token"});
        let basic = json!({"username": {"name": "prom", "key": "u"}, "password": {"name": "prom", "key": "p"}});
        let cases = [
            (
                json!({"authorization": {"credentials": secret}, "basicAuth": basic}),
                "choose one of authorization (bearer token) or basicAuth",
            ),
            (
                json!({"authorization": {"type": "basic", "credentials": secret}}),
                "cannot be Basic: use basicAuth",
            ),
            (
                json!({"basicAuth": basic, "headers": [{"name": "authorization", "value": "x"}]}),
                "cannot set Authorization",
            ),
            (
                json!({"headers": [{"name": "X-A", "value": "1"}, {"name": "X-A", "value": "2"}]}),
                "header names must be unique",
            ),
            (
                json!({"headers": [{"name": "X-A"}]}),
                "exactly one of value or secret",
            ),
            (
                json!({"headers": [{"name": "X-A", "value": "1", "secret": secret}]}),
                "exactly one of value or secret",
            ),
            (
                json!({"address": "http://p:9090", "tlsConfig": {"insecureSkipVerify": true}}),
                "tlsConfig needs an https:// address",
            ),
            (
                json!({"tlsConfig": {"insecureSkipVerify": true}}),
                "tlsConfig needs an https:// address",
            ),
            (
                json!({"address": "https://p", "tlsConfig": {"ca": {}}}),
                "exactly one of secret or configMap",
            ),
            (
                json!({"address": "https://p", "tlsConfig": {"ca": {"secret": secret, "configMap": secret}}}),
                "exactly one of secret or configMap",
            ),
            (
                json!({"address": "https://p", "tlsConfig": {"ca": {"secret": secret}, "insecureSkipVerify": true}}),
                "not both",
            ),
        ];
        for (p, want) in cases {
            let got = messages(prom(p.clone()));
            assert!(
                got.iter().any(|m| m.contains(want)),
                "{p}: want {want:?}, got {got:?}"
            );
        }
        // Valid shapes, including an Authorization header when no auth is set.
        for p in [
            json!({"address": "https://p", "basicAuth": basic, "headers": [{"name": "X-Scope-OrgID", "value": "t1"}],
                   "tlsConfig": {"ca": {"configMap": {"name": "ca", "key": "ca.crt"}}}}),
            json!({"authorization": {"type": "Token", "credentials": secret}, "headers": [{"name": "X-Key", "secret": secret}]}),
            json!({"headers": [{"name": "Authorization", "secret": secret}]}),
            json!({"address": "https://p", "tlsConfig": {"insecureSkipVerify": true}}),
        ] {
            assert_eq!(messages(prom(p.clone())), Vec::<String>::new(), "{p}");
        }
    }

    #[test]
    fn every_rule_fits_the_api_server_cost_budget() {
        fn walk(schema: &Value, path: &str, out: &mut Vec<String>) {
            let Some(map) = schema.as_object() else {
                return;
            };
            if let Some(rules) = map
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
            {
                let compiled = compile_schema(schema);
                for rule in rules.iter().filter_map(|r| r["rule"].as_str()) {
                    for w in estimate_rule_cost(rule, &compiled) {
                        out.push(format!("{path}: {rule}: {w:?}"));
                    }
                }
            }
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("properties", Value::Object(props)) => {
                        for (name, child) in props {
                            walk(child, &format!("{path}.{name}"), out);
                        }
                    }
                    ("items" | "additionalProperties", child) => {
                        walk(child, &format!("{path}[]"), out);
                    }
                    _ => {}
                }
            }
        }
        let mut warnings = Vec::new();
        walk(&crd_schema().unwrap(), "", &mut warnings);
        assert!(warnings.is_empty(), "{warnings:#?}");
    }
}
