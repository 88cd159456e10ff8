//! Request URLs: which resource a path names (`/apis/apps/v1/namespaces/ns/deployments/x/scale`)
//! and the query parameters the server reads.

/// A resource path, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `/api/v1` or `/apis/GROUP/VERSION`.
    pub prefix: String,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The API version (`v1`, `v1alpha1`).
    pub version: String,
    /// The plural resource (`deployments`).
    pub resource: String,
    /// The namespace of a namespaced request.
    pub namespace: Option<String>,
    /// The object's name (absent for collections).
    pub name: Option<String>,
    /// `status`, `scale`… when the request is on a subresource.
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/G/V/...` resource paths; `None` for anything else
/// (discovery, `/version`, unknown paths).
pub fn parse(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        // `namespaces/X/status` and `namespaces/X/finalize` are subresources of namespace X,
        // not resources in it (as the API server's request info reads them).
        ["namespaces", _, "status" | "finalize"] => (None, rest),
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let resource = (*rest.first()?).to_owned();
    if resource.is_empty() || rest.len() > 3 {
        return None;
    }
    Some(Target {
        prefix: prefix_of(group, version),
        group: group.to_owned(),
        version: version.to_owned(),
        resource,
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    })
}

/// `/api/v1` for the core group, `/apis/G/V` for the others.
pub fn prefix_of(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// The URL prefix of an `apiVersion` (`apps/v1` → `/apis/apps/v1`, `v1` → `/api/v1`).
pub fn prefix_of_api_version(api_version: &str) -> String {
    match api_version.split_once('/') {
        Some((g, v)) => prefix_of(g, v),
        None => prefix_of("", api_version),
    }
}

/// The decoded value of query parameter `key`.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` escapes and `+` (form encoding) in a query value.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaced_subresources_and_cluster_paths() {
        let t = parse("/apis/apps/v1/namespaces/ns/deployments/web/scale").unwrap();
        assert_eq!(
            (
                t.group.as_str(),
                t.resource.as_str(),
                t.namespace.as_deref()
            ),
            ("apps", "deployments", Some("ns"))
        );
        assert_eq!(
            (t.name.as_deref(), t.subresource.as_deref()),
            (Some("web"), Some("scale"))
        );
        let ns = parse("/api/v1/namespaces/default").unwrap();
        assert_eq!(
            (ns.resource.as_str(), ns.name.as_deref(), ns.namespace),
            ("namespaces", Some("default"), None)
        );
        let status = parse("/api/v1/namespaces/default/status").unwrap();
        assert_eq!(
            (
                status.resource.as_str(),
                status.name.as_deref(),
                status.subresource.as_deref(),
                status.namespace
            ),
            ("namespaces", Some("default"), Some("status"), None)
        );
        let all = parse("/api/v1/pods").unwrap();
        assert_eq!((all.resource.as_str(), all.namespace), ("pods", None));
        assert_eq!(parse("/apis/apps/v1"), None);
        assert_eq!(parse("/version"), None);
    }

    #[test]
    fn decodes_query_values() {
        let q = "labelSelector=app%3Dweb%2Ctrack+in&watch=true&x";
        assert_eq!(
            query_param(q, "labelSelector").as_deref(),
            Some("app=web,track in")
        );
        assert_eq!(query_param(q, "watch").as_deref(), Some("true"));
        assert_eq!(query_param(q, "x").as_deref(), Some(""));
        assert_eq!(query_param(q, "y"), None);
        assert_eq!(percent_decode("100%"), "100%");
    }
}
