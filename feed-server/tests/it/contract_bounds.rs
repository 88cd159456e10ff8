//! The bounds the OpenAPI document promises, held by the server on both stores: what schemathesis
//! found where server and document disagreed (`duration_ms` beyond int64 was accepted, a profile
//! field of 32 accented characters was refused), and the document itself served as operational
//! traffic.

use crate::common;

use common::*;
use serde_json::json;

async fn duration_ms_is_bounded_to_int64_and_a_refusal_stores_nothing(b: Backend) {
    let app = TestApp::start(b).await;
    let mut v = video("long", "c", &["t"], 1);
    v["duration_ms"] = json!(i64::MAX);
    app.put_videos(&[v.clone()]).await;
    let mut over = video("over", "c", &["t"], 1);
    over["duration_ms"] = json!(i64::MAX as u64 + 1);
    let (status, body) = app.put("/v1/videos", &json!([over])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_duration");
    // Nothing stored: an event on the refused video is rejected as unknown.
    let (status, body) = app
        .post(
            "/v1/events",
            &json!({"events": [{"user_id": "u", "video_id": "over", "type": "like"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rejected"][0]["code"], "unknown_video");
}

async fn profile_fields_are_bounded_in_characters_not_bytes(b: Backend) {
    let app = TestApp::start(b).await;
    let accented = "é".repeat(32); // 64 bytes, 32 characters
    let (status, body) = app
        .put(
            "/v1/users/u1/profile",
            &json!({"language": accented, "region": ""}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = app
        .put(
            "/v1/users/u1/profile",
            &json!({"language": "é".repeat(33), "region": ""}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_profile");
}

async fn openapi_json_is_served_and_counted_as_operational(b: Backend) {
    let app = TestApp::start(b).await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/feed"]["get"].is_object(), "{doc}");
    let metrics = app.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "feed_http_operational_requests_total",
            &[("route", "/openapi.json"), ("status", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "feed_http_requests_total",
            &[("route", "/openapi.json")]
        ),
        None
    );
}

both_stores!(
    duration_ms_is_bounded_to_int64_and_a_refusal_stores_nothing,
    profile_fields_are_bounded_in_characters_not_bytes,
    openapi_json_is_served_and_counted_as_operational,
);
