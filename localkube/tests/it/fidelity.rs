//! The API server on its own, through its HTTP interface in-process: watches resume from a
//! resourceVersion and answer 410 Gone once it is compacted, server-side apply conflicts and
//! force, garbage collection of owned objects, finalizers, RBAC allow/deny with the real
//! server's message, CRD validation (422 with field paths), the scale subresource, selectors.

use std::time::Duration;

use bytes::Bytes;
use feedroll_localkube::rbac::Identity;
use feedroll_localkube::{FakeApi, Verb};
use futures::StreamExt;
use http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// One request; `(status code, body)`.
async fn call(
    api: &FakeApi,
    method: Method,
    uri: &str,
    content_type: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let res = api
        .clone()
        .oneshot(req.body(kube::client::Body::from(bytes)).unwrap())
        .await
        .unwrap();
    let code = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn admin(
    api: &FakeApi,
    method: Method,
    uri: &str,
    ct: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(api, method, uri, ct, body, None).await
}

/// The events of a watch until `n` arrived (or 2 s passed).
async fn watch_events(api: &FakeApi, uri: &str, n: usize) -> Vec<Value> {
    let mut body = open_watch(api, uri).await;
    read_events(&mut body, n).await
}

type WatchBody = http_body_util::BodyDataStream<feedroll_localkube::server::ResponseBody>;

/// A watch, open: its changes are those after this call.
async fn open_watch(api: &FakeApi, uri: &str) -> WatchBody {
    let req = Request::get(uri).body(kube::client::Body::empty()).unwrap();
    let res = api.clone().oneshot(req).await.unwrap();
    res.into_body().into_data_stream()
}

/// The next events of an open watch until `n` arrived (or 2 s passed).
async fn read_events(body: &mut WatchBody, n: usize) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while events.len() < n {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await else {
            break;
        };
        let chunk: Bytes = chunk;
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            events.push(serde_json::from_slice(&line).unwrap());
        }
    }
    events
}

fn cm(name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"},
           "data": {"k": data}})
}

const CMS: &str = "/api/v1/namespaces/ns/configmaps";
const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

#[tokio::test]
async fn a_watch_resumes_after_its_resource_version_and_gets_410_once_compacted() {
    let api = FakeApi::new();
    let (_, a) = admin(&api, Method::POST, CMS, JSON, Some(cm("a", "1"))).await;
    let seen = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(&api, Method::POST, CMS, JSON, Some(cm("b", "1"))).await;
    admin(
        &api,
        Method::PATCH,
        &format!("{CMS}/a"),
        MERGE,
        Some(json!({"data": {"k": "2"}})),
    )
    .await;
    admin(&api, Method::DELETE, &format!("{CMS}/b"), JSON, None).await;

    let events = watch_events(&api, &format!("{CMS}?watch=true&resourceVersion={seen}"), 3).await;
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["object"]["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("ADDED".into(), "b".into()),
            ("MODIFIED".into(), "a".into()),
            ("DELETED".into(), "b".into())
        ]
    );
    // Without a resourceVersion: the current objects as ADDED.
    let now = watch_events(&api, &format!("{CMS}?watch=true"), 1).await;
    assert_eq!(now.len(), 1);
    assert_eq!(now[0]["object"]["data"]["k"], "2");

    api.compact();
    let gone = watch_events(&api, &format!("{CMS}?watch=true&resourceVersion={seen}"), 1).await;
    assert_eq!(gone[0]["type"], "ERROR");
    assert_eq!(gone[0]["object"]["code"], 410);
    assert_eq!(gone[0]["object"]["reason"], "Expired");
    // The current resourceVersion still resumes, and live changes arrive.
    let (_, list) = admin(&api, Method::GET, CMS, JSON, None).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let live = tokio::spawn({
        let api = api.clone();
        async move { watch_events(&api, &format!("{CMS}?watch=true&resourceVersion={rv}"), 1).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    admin(&api, Method::POST, CMS, JSON, Some(cm("c", "1"))).await;
    let live = live.await.unwrap();
    assert_eq!(live[0]["object"]["metadata"]["name"], "c");
}

/// `(type, name, label app)` of watch events.
fn summary(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            let m = &e["object"]["metadata"];
            (
                e["type"].as_str().unwrap_or_default().into(),
                m["name"].as_str().unwrap_or_default().into(),
                m["labels"]["app"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_watch_with_a_selector_sees_objects_enter_and_leave_it() {
    let api = FakeApi::new();
    let labelled = |app: &str, data: &str| {
        let mut c = cm("a", data);
        c["metadata"]["labels"] = json!({"app": app});
        c
    };
    let (_, other) = admin(&api, Method::POST, CMS, JSON, Some(cm("other", "1"))).await;
    let since = other["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = format!("{CMS}?watch=true&labelSelector=app%3Dweb");
    let mut live = open_watch(&api, &uri).await;
    api.put("configmaps", labelled("web", "1")); // created inside: ADDED
    api.put("configmaps", labelled("web", "2")); // changed inside: MODIFIED
    api.put("configmaps", labelled("db", "3")); // leaves: DELETED (as it was, new rv)
    api.put("configmaps", labelled("db", "4")); // changed outside: nothing
    api.put("configmaps", cm("other", "2")); // outside all along: nothing
    let back = api.put("configmaps", labelled("web", "5")); // enters: ADDED
    let expected = [
        ("ADDED".into(), "a".into(), "web".into()),
        ("MODIFIED".into(), "a".into(), "web".into()),
        ("DELETED".into(), "a".into(), "web".into()),
        ("ADDED".into(), "a".into(), "web".into()),
    ];
    let events = read_events(&mut live, 5).await;
    assert_eq!(summary(&events), expected);
    // The DELETED event carries the resourceVersion of the change that removed it from the
    // selection, so a client resuming from it misses nothing.
    let rv = |e: &Value| {
        e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&events[2]) > rv(&events[1]));
    assert_eq!(events[3]["object"], back);
    // Replayed from the history, the same events.
    let replayed = watch_events(&api, &format!("{uri}&resourceVersion={since}"), 5).await;
    assert_eq!(summary(&replayed), expected);
}

#[tokio::test]
async fn a_kube_runtime_watcher_relists_after_410_and_misses_nothing() {
    use kube_runtime::watcher::{self, Event};
    let api = FakeApi::new();
    for i in 0..3 {
        api.put("configmaps", cm(&format!("c{i}"), "1"));
    }
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(api.client(), "ns");
    let mut stream = std::pin::pin!(watcher::watcher(cms, watcher::Config::default()));
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a watcher event within 5 s")
            .expect("the watcher goes on")
    };
    let name = |cm: &k8s_openapi::api::core::v1::ConfigMap| cm.metadata.name.clone().unwrap();
    // The initial list, consumed whole.
    let mut listed = Vec::new();
    loop {
        match next().await.unwrap() {
            Event::InitApply(c) => listed.push(name(&c)),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(listed, ["c0", "c1", "c2"]);
    // A change the watch does not select moves the resourceVersion on; compacted, it leaves
    // the watcher's resourceVersion behind. Ending every live stream makes it reconnect from
    // there: 410, then a relist with what was written meanwhile.
    api.put(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": "ns"}}),
    );
    api.compact();
    api.set_live_buffer(1024);
    api.put("configmaps", cm("c3", "1"));
    let mut expired = false;
    let mut relisted = Vec::new();
    loop {
        match next().await {
            Err(watcher::Error::WatchError(e)) if e.code == 410 => expired = true,
            Err(e) => panic!("unexpected watcher error {e}"),
            Ok(Event::Init) => relisted.clear(),
            Ok(Event::InitApply(c)) => relisted.push(name(&c)),
            Ok(Event::InitDone) => break,
            Ok(other) => panic!("expected a relist, got {other:?}"),
        }
    }
    assert!(
        expired,
        "the watcher was not told its resourceVersion expired"
    );
    assert_eq!(relisted, ["c0", "c1", "c2", "c3"]);
    // And it watches live again.
    api.put("configmaps", cm("c4", "1"));
    match next().await.unwrap() {
        Event::Apply(c) => assert_eq!(name(&c), "c4"),
        other => panic!("expected c4, got {other:?}"),
    }
}

fn deploy(replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}}}})
}

const DEPLOY: &str = "/apis/apps/v1/namespaces/ns/deployments/web";

#[tokio::test]
async fn server_side_apply_conflicts_between_managers_unless_forced() {
    let api = FakeApi::new();
    let (code, created) = admin(
        &api,
        Method::PATCH,
        &format!("{DEPLOY}?fieldManager=alice"),
        APPLY,
        Some(deploy(2)),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "alice");
    // Same value: shared, no conflict.
    let (code, _) = admin(
        &api,
        Method::PATCH,
        &format!("{DEPLOY}?fieldManager=bob"),
        APPLY,
        Some(deploy(2)),
    )
    .await;
    assert_eq!(code, 200);
    let (code, status) = admin(
        &api,
        Method::PATCH,
        &format!("{DEPLOY}?fieldManager=bob"),
        APPLY,
        Some(deploy(3)),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    assert_eq!(
        api.get("apps/v1", "deployments", "ns", "web").unwrap()["spec"]["replicas"],
        2
    );
    let (code, forced) = admin(
        &api,
        Method::PATCH,
        &format!("{DEPLOY}?fieldManager=bob&force=true"),
        APPLY,
        Some(deploy(3)),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(forced["spec"]["replicas"], 3);
    // A merge patch (kubectl scale/edit) takes the field over without a conflict.
    let (code, _) = admin(
        &api,
        Method::PATCH,
        &format!("{DEPLOY}?fieldManager=kubectl-edit"),
        MERGE,
        Some(json!({"spec": {"replicas": 5}})),
    )
    .await;
    assert_eq!(code, 200);
    let (code, status) = admin(
        &api,
        Method::PATCH,
        &format!("{DEPLOY}?fieldManager=bob"),
        APPLY,
        Some(deploy(3)),
    )
    .await;
    assert_eq!(
        (
            code,
            status["message"].as_str().unwrap().contains("kubectl-edit")
        ),
        (409, true)
    );
    // Apply without a field manager is refused.
    let (code, _) = admin(&api, Method::PATCH, DEPLOY, APPLY, Some(deploy(3))).await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn status_writes_touch_only_status_and_stale_updates_conflict() {
    let api = FakeApi::new();
    admin(
        &api,
        Method::PATCH,
        &format!("{DEPLOY}?fieldManager=op"),
        APPLY,
        Some(deploy(2)),
    )
    .await;
    let (_, s) = admin(
        &api,
        Method::PATCH,
        &format!("{DEPLOY}/status"),
        MERGE,
        Some(json!({"spec": {"replicas": 9}, "status": {"readyReplicas": 2}})),
    )
    .await;
    assert_eq!(
        (
            s["spec"]["replicas"].clone(),
            s["status"]["readyReplicas"].clone()
        ),
        (json!(2), json!(2))
    );
    let (_, m) = admin(
        &api,
        Method::PATCH,
        DEPLOY,
        MERGE,
        Some(json!({"status": {"readyReplicas": 0}})),
    )
    .await;
    assert_eq!(m["status"]["readyReplicas"], 2);
    let mut stale = m.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let (code, status) = admin(&api, Method::PUT, DEPLOY, JSON, Some(stale)).await;
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));
    let (_, scale) = admin(&api, Method::GET, &format!("{DEPLOY}/scale"), JSON, None).await;
    assert_eq!(
        (
            scale["spec"]["replicas"].clone(),
            scale["status"]["selector"].clone()
        ),
        (json!(2), json!("app=web"))
    );
    let (code, _) = admin(
        &api,
        Method::PATCH,
        &format!("{DEPLOY}/scale"),
        MERGE,
        Some(json!({"spec": {"replicas": 4}})),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        api.get("apps/v1", "deployments", "ns", "web").unwrap()["spec"]["replicas"],
        4
    );
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents_unless_orphaned() {
    let api = FakeApi::new();
    let owner = api.put("configmaps", cm("owner", "1"));
    let owner_ref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                            "uid": owner["metadata"]["uid"], "controller": true}]);
    let mut child = cm("child", "1");
    child["metadata"]["ownerReferences"] = owner_ref.clone();
    let child = api.put("configmaps", child);
    let mut grandchild = cm("grandchild", "1");
    grandchild["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "child", "uid": child["metadata"]["uid"]}]);
    api.put("configmaps", grandchild);
    let mut finalized = cm("finalized", "1");
    finalized["metadata"]["ownerReferences"] = owner_ref.clone();
    finalized["metadata"]["finalizers"] = json!(["example.dev/cleanup"]);
    api.put("configmaps", finalized);
    api.put("configmaps", cm("unrelated", "1"));

    let (code, _) = admin(
        &api,
        Method::DELETE,
        &format!("{CMS}/owner"),
        JSON,
        Some(
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}),
        ),
    )
    .await;
    assert_eq!(code, 200);
    let names: Vec<String> = api
        .list("v1", "configmaps", "ns")
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["finalized", "unrelated"]);
    // The finalizer holds the dependent, marked for deletion, until it is removed.
    let held = api.get("v1", "configmaps", "ns", "finalized").unwrap();
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = admin(
        &api,
        Method::PATCH,
        &format!("{CMS}/finalized"),
        MERGE,
        Some(json!({"metadata": {"finalizers": null}})),
    )
    .await;
    assert_eq!(code, 200);
    assert!(api.get("v1", "configmaps", "ns", "finalized").is_none());

    // Orphan: the dependent stays, without its owner reference.
    let owner = api.put("configmaps", cm("owner2", "1"));
    let mut kept = cm("kept", "1");
    kept["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "owner2", "uid": owner["metadata"]["uid"]}]);
    api.put("configmaps", kept);
    admin(
        &api,
        Method::DELETE,
        &format!("{CMS}/owner2?propagationPolicy=Orphan"),
        JSON,
        None,
    )
    .await;
    let kept = api.get("v1", "configmaps", "ns", "kept").unwrap();
    assert_eq!(kept["metadata"]["ownerReferences"], json!([]));
}

#[tokio::test]
async fn a_finalizer_delays_deletion_and_a_namespace_takes_its_objects_along() {
    let api = FakeApi::cluster().unwrap();
    let token = api.issue_token(Identity::admin());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}});
    let (code, _) = call(
        &api,
        Method::POST,
        "/api/v1/namespaces",
        JSON,
        Some(ns),
        Some(&token),
    )
    .await;
    assert_eq!(code, 201);
    let mut held = cm("held", "1");
    held["metadata"]["finalizers"] = json!(["a/b"]);
    call(&api, Method::POST, CMS, JSON, Some(held), Some(&token)).await;
    let (code, obj) = call(
        &api,
        Method::DELETE,
        &format!("{CMS}/held"),
        JSON,
        None,
        Some(&token),
    )
    .await;
    assert_eq!(code, 200);
    assert!(obj["metadata"]["deletionTimestamp"].is_string());
    assert!(api.get("v1", "configmaps", "ns", "held").is_some());
    call(
        &api,
        Method::DELETE,
        "/api/v1/namespaces/ns",
        JSON,
        None,
        Some(&token),
    )
    .await;
    // The finalizer still holds the ConfigMap, so the namespace stays, Terminating, and
    // refuses new content with the API server's 403.
    assert!(api.get("v1", "configmaps", "ns", "held").is_some());
    let terminating = api
        .get("v1", "namespaces", "", "ns")
        .expect("namespace kept");
    assert_eq!(terminating["status"]["phase"], "Terminating");
    assert!(terminating["metadata"]["deletionTimestamp"].is_string());
    let (code, status) = call(
        &api,
        Method::POST,
        CMS,
        JSON,
        Some(cm("new", "1")),
        Some(&token),
    )
    .await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(
        status["message"],
        "configmaps \"new\" is forbidden: unable to create new content in namespace ns because it is being terminated"
    );
    let apply = format!("{CMS}/new?fieldManager=m");
    let (code, _) = call(
        &api,
        Method::PATCH,
        &apply,
        APPLY,
        Some(cm("new", "1")),
        Some(&token),
    )
    .await;
    assert_eq!(code, 403);
    assert!(api.get("v1", "configmaps", "ns", "new").is_none());
    // The ConfigMap goes when its finalizer does, and the namespace with it.
    api.update("v1", "configmaps", "ns", "held", |o| {
        o["metadata"]["finalizers"] = json!([]);
    });
    assert!(api.get("v1", "configmaps", "ns", "held").is_none());
    assert!(api.get("v1", "namespaces", "", "ns").is_none());
    // Creating in a missing namespace is a 404 naming it.
    let (code, status) = call(
        &api,
        Method::POST,
        CMS,
        JSON,
        Some(cm("x", "1")),
        Some(&token),
    )
    .await;
    assert_eq!(
        (code, status["message"].as_str()),
        (404, Some("namespaces \"ns\" not found"))
    );
}

fn rbac_objects(api: &FakeApi) {
    api.put("roles", json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "op", "namespace": "ns"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
                  {"apiGroups": ["feedroll.dev"], "resources": ["feedrollouts/status"], "verbs": ["patch"]}]}));
    api.put(
        "rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "op", "namespace": "ns"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "op"},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "ns"}]}),
    );
}

#[tokio::test]
async fn rbac_allows_what_the_bound_role_grants_and_refuses_the_rest_with_403() {
    let api = FakeApi::cluster().unwrap();
    api.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}),
    );
    api.put("configmaps", cm("a", "1"));
    rbac_objects(&api);
    let token = api.issue_token(Identity::service_account("ns", "op"));
    let t = Some(token.as_str());
    assert_eq!(
        call(&api, Method::GET, &format!("{CMS}/a"), JSON, None, t)
            .await
            .0,
        200
    );
    assert_eq!(call(&api, Method::GET, CMS, JSON, None, t).await.0, 200);
    let (code, status) = call(&api, Method::DELETE, &format!("{CMS}/a"), JSON, None, t).await;
    assert_eq!(code, 403);
    assert_eq!(
        status["message"],
        "configmaps \"a\" is forbidden: User \"system:serviceaccount:ns:op\" cannot delete resource \"configmaps\" in API group \"\" in the namespace \"ns\""
    );
    let (code, status) = call(&api, Method::GET, "/api/v1/configmaps", JSON, None, t).await;
    assert_eq!(code, 403);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .ends_with("at the cluster scope")
    );
    let (code, status) = call(
        &api,
        Method::PATCH,
        "/apis/feedroll.dev/v1alpha1/namespaces/ns/feedrollouts/x",
        MERGE,
        Some(json!({})),
        t,
    )
    .await;
    assert_eq!(code, 403);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("cannot patch resource \"feedrollouts\"")
    );
    // The status subresource is granted: the request passes authorization (404: no such object).
    let (code, _) = call(
        &api,
        Method::PATCH,
        "/apis/feedroll.dev/v1alpha1/namespaces/ns/feedrollouts/x/status",
        MERGE,
        Some(json!({})),
        t,
    )
    .await;
    assert_eq!(code, 404);
    // No token, an unknown token: 401. Discovery is open to every authenticated user.
    assert_eq!(call(&api, Method::GET, CMS, JSON, None, None).await.0, 401);
    assert_eq!(
        call(&api, Method::GET, CMS, JSON, None, Some("nope"))
            .await
            .0,
        401
    );
    assert_eq!(call(&api, Method::GET, "/apis", JSON, None, t).await.0, 200);
    // Every decision is recorded.
    let denied: Vec<(Verb, String)> = api
        .denied()
        .iter()
        .map(|r| (r.authorization[0].0, r.path.clone()))
        .collect();
    assert_eq!(denied.len(), 3);
    assert_eq!(denied[0], (Verb::Delete, format!("{CMS}/a")));
    assert!(
        api.requests()
            .iter()
            .filter(|r| r.user == "system:serviceaccount:ns:op")
            .count()
            >= 7
    );
}

/// A token for the ServiceAccount `ns:op`, bound in `ns` to a Role with `rules`.
fn op_with_role(api: &FakeApi, rules: Value) -> String {
    api.put(
        "roles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "op-role", "namespace": "ns"}, "rules": rules}),
    );
    api.put(
        "rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "op-role", "namespace": "ns"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "op-role"},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "ns"}]}),
    );
    api.issue_token(Identity::service_account("ns", "op"))
}

#[tokio::test]
async fn an_apply_that_creates_needs_create_as_well_as_patch() {
    let api = FakeApi::cluster().unwrap();
    api.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}),
    );
    let token = op_with_role(
        &api,
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}]),
    );
    let t = Some(token.as_str());
    let api = &api;
    let apply = |name: &str| {
        let uri = format!("{CMS}/{name}?fieldManager=op");
        let body = cm(name, "2");
        async move { call(api, Method::PATCH, &uri, APPLY, Some(body), t).await }
    };
    // Creating through apply needs `create`: refused, nothing stored, both checks recorded.
    let (code, status) = apply("new").await;
    assert_eq!(code, 403, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("cannot create resource \"configmaps\""),
        "{status}"
    );
    assert!(api.get("v1", "configmaps", "ns", "new").is_none());
    let denied = api.denied();
    let verbs: Vec<(Verb, bool)> = denied[0]
        .authorization
        .iter()
        .map(|(v, d)| (*v, d.allowed()))
        .collect();
    assert_eq!(verbs, [(Verb::Patch, true), (Verb::Create, false)]);
    // Updating an existing object through apply needs `patch` only.
    api.put("configmaps", cm("old", "1"));
    let (code, status) = apply("old").await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["data"]["k"], "2");
}

#[tokio::test]
async fn rbac_reads_names_from_field_selectors_and_namespaces_from_namespace_paths() {
    let api = FakeApi::cluster().unwrap();
    for ns in ["ns", "other"] {
        api.put(
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    api.put("configmaps", cm("a", "1"));
    api.put("configmaps", cm("b", "1"));
    let token = op_with_role(
        &api,
        json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"],
                "verbs": ["get", "list", "watch"]},
               {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
               {"apiGroups": [""], "resources": ["namespaces/status"], "verbs": ["get"]}]),
    );
    let t = Some(token.as_str());
    let api = &api;
    let get = |uri: String| async move { call(api, Method::GET, &uri, JSON, None, t).await };
    // A list of the one named object is allowed by resourceNames, and lists only it.
    let (code, list) = get(format!("{CMS}?fieldSelector=metadata.name%3Da")).await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(format!("{CMS}?fieldSelector=metadata.name%3Db"))
            .await
            .0,
        403
    );
    assert_eq!(get(CMS.to_owned()).await.0, 403);
    let watch = Request::get(format!("{CMS}?watch=true&fieldSelector=metadata.name%3Da"))
        .header("authorization", format!("Bearer {token}"))
        .body(kube::client::Body::empty())
        .unwrap();
    assert_eq!(api.clone().oneshot(watch).await.unwrap().status(), 200);
    // A namespace is in itself: a RoleBinding in `ns` grants reading `ns` (and its status).
    assert_eq!(get("/api/v1/namespaces/ns".into()).await.0, 200);
    let (code, status) = get("/api/v1/namespaces/ns/status".into()).await;
    assert_eq!(
        (code, status["metadata"]["name"].as_str()),
        (200, Some("ns"))
    );
    let (code, status) = get("/api/v1/namespaces/other".into()).await;
    assert_eq!(code, 403);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .ends_with("in the namespace \"other\""),
        "{status}"
    );
    // Field selectors on fields the kind does not index: 400.
    let (code, status) = get(format!("{CMS}?fieldSelector=metadata.name%3Da,data.k%3D1")).await;
    assert_eq!(code, 400);
    assert_eq!(status["message"], "field label not supported: data.k");
}

#[tokio::test]
async fn a_kube_client_as_a_service_account_is_authorized_by_rbac() {
    let api = FakeApi::cluster().unwrap();
    api.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}),
    );
    api.put("configmaps", cm("a", "1"));
    rbac_objects(&api);
    let client = api.client_as(Identity::service_account("ns", "op"));
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client, "ns");
    assert!(cms.get("a").await.is_ok());
    let err = cms.delete("a", &Default::default()).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 403));
}

#[tokio::test]
async fn feedrollouts_are_validated_against_the_crd_schema_and_cel_rules() {
    let api = FakeApi::cluster().unwrap();
    let token = api.issue_token(Identity::admin());
    let t = Some(token.as_str());
    api.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "feed"}}),
    );
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/default-plan.yaml"
    ))
    .unwrap();
    let good: Value = serde_yaml::from_str(&text).unwrap();
    let url = "/apis/feedroll.dev/v1alpha1/namespaces/feed/feedrollouts";
    let (code, _) = call(&api, Method::POST, url, JSON, Some(good.clone()), t).await;
    assert_eq!(code, 201);
    let mut bad = good.clone();
    bad["metadata"]["name"] = json!("bad");
    bad["spec"]["stratgy"] = json!({});
    bad["spec"]["replicas"] = json!("ten");
    let (code, status) = call(&api, Method::POST, url, JSON, Some(bad), t).await;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"spec.stratgy") && fields.contains(&"spec.replicas"),
        "{status}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("FeedRollout.feedroll.dev \"bad\" is invalid: [")
    );
    assert!(
        api.get("feedroll.dev/v1alpha1", "feedrollouts", "feed", "bad")
            .is_none()
    );
    // A CEL rule: weights must not decrease. The patch is refused and nothing changes.
    let (code, status) = call(
        &api,
        Method::PATCH,
        &format!("{url}/feed"),
        MERGE,
        Some(json!({"spec": {"strategy": {"steps": [{"setWeight": 50}, {"setWeight": 10}]}}})),
        t,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("never decrease")
    );
    let stored = api
        .get("feedroll.dev/v1alpha1", "feedrollouts", "feed", "feed")
        .unwrap();
    assert_eq!(stored["metadata"]["generation"], 1);
    // Strategic merge patch is refused on a custom resource, as by the real server.
    let (code, _) = call(
        &api,
        Method::PATCH,
        &format!("{url}/feed"),
        "application/strategic-merge-patch+json",
        Some(json!({"spec": {"paused": true}})),
        t,
    )
    .await;
    assert_eq!(code, 415);
}

#[tokio::test]
async fn selectors_filter_lists_and_bad_ones_are_400() {
    let api = FakeApi::new();
    for (name, track) in [("a", "stable"), ("b", "canary"), ("c", "canary")] {
        let mut o = cm(name, "1");
        o["metadata"]["labels"] = json!({"track": track});
        api.put("configmaps", o);
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, l) = admin(
        &api,
        Method::GET,
        &format!("{CMS}?labelSelector=track%3Dcanary"),
        JSON,
        None,
    )
    .await;
    assert_eq!(names(&l), ["b", "c"]);
    let (_, l) = admin(
        &api,
        Method::GET,
        &format!("{CMS}?labelSelector=track+notin+(canary)&fieldSelector=metadata.name%3Da"),
        JSON,
        None,
    )
    .await;
    assert_eq!(names(&l), ["a"]);
    let (code, _) = admin(
        &api,
        Method::GET,
        &format!("{CMS}?labelSelector=track+in+canary"),
        JSON,
        None,
    )
    .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn a_history_limit_compacts_old_resource_versions() {
    let api = FakeApi::new();
    let (_, first) = admin(&api, Method::POST, CMS, JSON, Some(cm("a", "1"))).await;
    let rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..3 {
        admin(
            &api,
            Method::POST,
            CMS,
            JSON,
            Some(cm(&format!("b{i}"), "1")),
        )
        .await;
    }
    api.set_history_limit(2);
    let gone = watch_events(&api, &format!("{CMS}?watch=true&resourceVersion={rv}"), 1).await;
    assert_eq!(gone[0]["object"]["code"], 410);
    // The last two changes are still there to resume from.
    let recent = (rv.parse::<u64>().unwrap() + 1).to_string();
    let events = watch_events(
        &api,
        &format!("{CMS}?watch=true&resourceVersion={recent}"),
        2,
    )
    .await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["object"]["metadata"]["name"], "b2");
}

#[tokio::test]
async fn built_in_names_labels_and_deployment_selectors_are_validated() {
    let api = FakeApi::new();
    let fields = |status: &Value| -> Vec<String> {
        status["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["field"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web"}});
    let (code, status) = admin(
        &api,
        Method::POST,
        "/api/v1/namespaces/ns/services",
        JSON,
        Some(svc),
    )
    .await;
    assert_eq!(
        (code, fields(&status)),
        (422, vec!["metadata.name".to_owned()]),
        "{status}"
    );
    let mut labelled = cm("a", "1");
    labelled["metadata"]["labels"] = json!({"bad key": "x", "ok": "bad value"});
    let (code, status) = admin(&api, Method::POST, CMS, JSON, Some(labelled)).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(fields(&status), ["metadata.labels", "metadata.labels.ok"]);
    let deploys = "/apis/apps/v1/namespaces/ns/deployments";
    let mut d = deploy(1);
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    let (code, status) = admin(&api, Method::POST, deploys, JSON, Some(d)).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(fields(&status), ["spec.template.metadata.labels"]);
    let (code, _) = admin(&api, Method::POST, deploys, JSON, Some(deploy(1))).await;
    assert_eq!(code, 201);
    let moved = json!({"spec": {"selector": {"matchLabels": {"app": "web", "x": "y"}},
        "template": {"metadata": {"labels": {"app": "web", "x": "y"}}}}});
    let (code, status) = admin(&api, Method::PATCH, DEPLOY, MERGE, Some(moved)).await;
    assert_eq!(
        (code, fields(&status)),
        (422, vec!["spec.selector".to_owned()]),
        "{status}"
    );
    assert!(api.list("v1", "configmaps", "ns").is_empty());
    assert!(api.list("v1", "services", "ns").is_empty());
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let api = FakeApi::cluster().unwrap();
    let token = api.issue_token(Identity::admin());
    let t = Some(token.as_str());
    let ns = "/api/v1/namespaces";
    let before = api.list("v1", "namespaces", "").len();
    // Not JSON.
    let req = Request::post(ns)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", JSON)
        .body(kube::client::Body::from(b"{not json".to_vec()))
        .unwrap();
    let res = api.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    // Protobuf (typed kubectl create): 415, naming what is accepted.
    let (code, status) = call(
        &api,
        Method::POST,
        ns,
        "application/vnd.kubernetes.protobuf",
        Some(json!({})),
        t,
    )
    .await;
    assert_eq!(code, 415);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );
    // No name.
    let (code, status) = call(
        &api,
        Method::POST,
        ns,
        JSON,
        Some(json!({"metadata": {}})),
        t,
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    // A resource the server does not serve, an unknown patch type, a name mismatch in apply.
    assert_eq!(
        call(
            &api,
            Method::GET,
            "/apis/example.dev/v1/widgets",
            JSON,
            None,
            t
        )
        .await
        .0,
        404
    );
    let (code, _) = call(
        &api,
        Method::PATCH,
        "/api/v1/namespaces/default",
        "text/plain",
        Some(json!({})),
        t,
    )
    .await;
    assert_eq!(code, 415);
    let (code, _) = call(
        &api,
        Method::PATCH,
        "/api/v1/namespaces/default?fieldManager=m",
        APPLY,
        Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})),
        t,
    )
    .await;
    assert_eq!(code, 400);
    // A bad selector and a bad resourceVersion.
    assert_eq!(
        call(
            &api,
            Method::GET,
            "/api/v1/namespaces?labelSelector=a+in+b",
            JSON,
            None,
            t
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &api,
            Method::GET,
            "/api/v1/namespaces?watch=true&resourceVersion=x",
            JSON,
            None,
            t
        )
        .await
        .0,
        400
    );
    // Bodies, and patch results, that are not objects with an object (or no) metadata: 422,
    // the stored object unchanged.
    let default_ns = api.get("v1", "namespaces", "", "default");
    let nsd = "/api/v1/namespaces/default";
    let shapes: [(Method, &str, &str, Value); 7] = [
        (Method::PATCH, nsd, MERGE, json!([])),
        (Method::PATCH, nsd, MERGE, json!({"metadata": "x"})),
        (
            Method::PATCH,
            nsd,
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/metadata", "value": 1}]),
        ),
        (
            Method::PATCH,
            nsd,
            "application/json-patch+json",
            json!([{"op": "replace", "path": "", "value": 1}]),
        ),
        (Method::PUT, nsd, JSON, json!({"metadata": "x"})),
        (Method::POST, ns, JSON, json!({"metadata": "x"})),
        (
            Method::PATCH,
            "/api/v1/namespaces/default?fieldManager=m",
            APPLY,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": 1}),
        ),
    ];
    for (method, uri, ct, body) in shapes {
        let (code, status) = call(&api, method.clone(), uri, ct, Some(body.clone()), t).await;
        assert_eq!(
            (code, status["reason"].as_str()),
            (422, Some("Invalid")),
            "{method} {uri} {body}: {status}"
        );
    }
    assert_eq!(api.get("v1", "namespaces", "", "default"), default_ns);
    assert_eq!(api.list("v1", "namespaces", "").len(), before);
    assert!(api.get("v1", "namespaces", "", "other").is_none());
}
