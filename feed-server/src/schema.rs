//! Schema-only types of the wire types' fields (`model`), for the OpenAPI document: what an id
//! is and the bounded sets of ids. They describe what the server checks; they check nothing.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::model::{MAX_FOLLOWS, MAX_ID_LEN, MAX_RANK_CANDIDATES};

/// An id (video, user, creator, tag) as the schema describes it: 1 to [`MAX_ID_LEN`] characters,
/// no control characters (the server also bounds it to [`MAX_ID_LEN`] bytes). Schema only.
pub struct Id;

/// Control characters (Unicode category Cc), which no id or profile field may hold.
pub const NO_CONTROL_CHARS: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_ID_LEN))
            .pattern(Some(NO_CONTROL_CHARS))
            .description(Some(
                "An id: 1 to 128 bytes of UTF-8, no control characters.",
            ))
            .into()
    }
}

impl ToSchema for Id {}

/// Distinct ids, `min` to `max` of them.
fn unique_ids(min: usize, max: usize) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(Id::schema())
        .min_items(Some(min))
        .max_items(Some(max))
        .unique_items(true)
}

/// `video_ids` of `POST /v1/rank`.
pub fn candidate_ids() -> ArrayBuilder {
    unique_ids(1, MAX_RANK_CANDIDATES)
}

/// `creators` and `friends` of `PUT /v1/users/{id}/follows`.
pub fn follows_ids() -> ArrayBuilder {
    unique_ids(0, MAX_FOLLOWS)
}
