//! `GET /openapi.json`: the OpenAPI 3.1 contract, generated from the handlers' `#[utoipa::path]`
//! annotations and the wire types of [`crate::model`] (never written by hand). Every [`Route`]
//! is in it (a unit test holds the two together), and the error `code` is the [`ErrorCode`]
//! enum. `make test` fuzzes the live server against it with schemathesis
//! (`feed-server/tests/contract`).
//!
//! [`Route`]: super::routes::Route

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use super::error::{ErrorBody, ErrorCode, ErrorDetail};
use super::openapi_security::Security;
use super::{catalog, events, feed, health, replay, tune, users};
use crate::model::{self, MAX_VIDEO_BATCH};
pub use crate::schema::Id;

/// The JSON body of `PUT /v1/videos`: 1 to [`MAX_VIDEO_BATCH`] videos, ids unique (the schema
/// can only say the items are distinct). Schema only.
pub struct VideoBatch;

impl PartialSchema for VideoBatch {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(RefOr::Ref(Ref::from_schema_name(model::Video::name())))
            .min_items(Some(1))
            .max_items(Some(MAX_VIDEO_BATCH))
            .unique_items(true)
            .into()
    }
}

impl ToSchema for VideoBatch {}

/// The contract of the whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Feedroll feed-server",
        description = "Personalised short-video ranking: feeds, ad-hoc ranking, engagement events \
                       and the catalog. Every error is `{\"error\":{\"code\",\"message\"}}`; \
                       `code` is one of `ErrorCode`."
    ),
    paths(
        feed::get_feed,
        feed::rank,
        events::post_events,
        catalog::put_videos,
        catalog::delete_video,
        users::put_follows,
        users::put_profile,
        tune::post_tune,
        replay::post_replay,
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        ErrorCode,
        Id,
        VideoBatch,
        model::Event,
        model::EventType,
        model::Video,
        model::ContentType,
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The document, built once.
static DOCUMENT: LazyLock<Document> = LazyLock::new(ApiDoc::openapi);

/// `GET /openapi.json`
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object),
    )
)]
pub async fn openapi_json() -> Json<&'static Document> {
    Json(&DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialise_as_their_wire_names_and_the_schema_lists_them_all() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::from(code.as_str()))
            );
        }
        let schema = serde_json::to_value(ErrorCode::schema()).unwrap_or_default();
        let listed: Vec<&str> = schema["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, all);
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_error_body_on_every_error_response() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().map_or(0, serde_json::Map::len);
        assert!(paths > 0, "no paths");
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                for (status, response) in op["responses"].as_object().into_iter().flatten() {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
}
