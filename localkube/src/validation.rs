//! Validation of custom resources against their CRD: the OpenAPI (structural) schema, then the
//! CEL rules, with the same code `feedroll-operator check` uses (`feedroll_crds::validate`).

use serde_json::Value;

use crate::error::{ApiError, Cause};
use crate::resources::ResourceInfo;

/// Checks `obj` against the schema of its kind (nothing to check for kinds without one).
pub fn check(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    let Some(schema) = &info.schema else {
        return Ok(());
    };
    let mut problems = feedroll_crds::validate::schema::validate(schema, obj);
    if problems.is_empty() {
        problems = feedroll_crds::validate::cel::validate(schema, obj);
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        kind: info.qualified_kind(),
        name: obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        causes: problems
            .into_iter()
            .map(|p| Cause {
                field: p.path,
                message: p.message,
            })
            .collect(),
    })
}
