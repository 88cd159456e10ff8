//! The authentication part of `/openapi.json`, derived from the scope table
//! ([`super::access::route_access`]) rather than repeated in every handler's annotation:
//! the `bearer` security scheme, each secured operation's requirement (the scope as its role,
//! which OpenAPI 3.1 allows for non-OAuth schemes) and its 401, 403 and 429 responses.

use axum::http::Method;
use utoipa::Modify;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};

use super::access::route_access;
use super::routes::Route;
use crate::auth::scope::Access;

/// Name of the security scheme in the document.
pub const SCHEME: &str = "bearer";

/// Adds the security scheme, requirements and auth responses to the document.
pub struct Security;

fn error_response(description: String) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

fn operation(doc: &mut OpenApi, route: Route) -> Option<&mut Operation> {
    let item = doc.paths.paths.get_mut(route.path())?;
    let op = match route.method() {
        Method::GET => &mut item.get,
        Method::POST => &mut item.post,
        Method::PUT => &mut item.put,
        Method::DELETE => &mut item.delete,
        _ => return None,
    };
    op.as_mut()
}

impl Modify for Security {
    fn modify(&self, doc: &mut OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                SCHEME,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "An API key: `Authorization: Bearer <key>`. Servers run without \
                             keys (open mode, development only) accept requests without it.",
                        ))
                        .build(),
                ),
            );
        for route in Route::ALL {
            let Access::Requires(scope) = route_access(route) else {
                continue;
            };
            let Some(op) = operation(doc, route) else {
                continue;
            };
            op.security = Some(vec![SecurityRequirement::new(SCHEME, [scope.as_str()])]);
            let challenge = HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some("`Bearer realm=\"feed-server\"…` (RFC 6750)"))
                .build();
            let retry_after = HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                ))
                .description(Some("Seconds until the limit admits a request again"))
                .build();
            let limits = if route == Route::Feed {
                "the API key's, the user's (`--user-rate-limit`) or, in open mode, the server's"
            } else {
                "the API key's or, in open mode, the server's"
            };
            let responses = &mut op.responses.responses;
            responses.insert(
                "401".into(),
                error_response(
                    "`unauthenticated`: no API key, a malformed `Authorization` header, or a \
                     key that is not valid"
                        .into(),
                )
                .header("WWW-Authenticate", challenge.clone())
                .build()
                .into(),
            );
            responses.insert(
                "403".into(),
                error_response(format!(
                    "`forbidden`: the API key lacks the `{scope}` scope"
                ))
                .header("WWW-Authenticate", challenge)
                .build()
                .into(),
            );
            responses.insert(
                "429".into(),
                error_response(format!("`rate_limited`: over a rate limit ({limits})"))
                    .header("Retry-After", retry_after)
                    .build()
                    .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;
    use crate::http::openapi::ApiDoc;

    #[test]
    fn secured_operations_are_exactly_the_routes_needing_a_scope() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        assert_eq!(
            doc["components"]["securitySchemes"][SCHEME]["scheme"],
            "bearer"
        );
        for route in Route::ALL {
            let op = &doc["paths"][route.path()][route.method().as_str().to_lowercase()];
            assert!(op.is_object(), "{route:?}");
            match route_access(route) {
                Access::Requires(scope) => {
                    assert_eq!(
                        op["security"],
                        serde_json::json!([{ SCHEME: [scope.as_str()] }]),
                        "{route:?}"
                    );
                    for status in ["401", "403", "429"] {
                        assert!(op["responses"][status].is_object(), "{route:?} {status}");
                    }
                    assert!(op["responses"]["429"]["headers"]["Retry-After"].is_object());
                }
                Access::Open => {
                    assert!(op["security"].is_null(), "{route:?}");
                    assert!(op["responses"]["401"].is_null(), "{route:?}");
                }
            }
        }
    }
}
