//! The changes `kubectl feedroll` makes, as pure functions from the objects read to a patch:
//! the command annotation (`promote`, `pause`…), `set image` and `undo`. Each refuses bad input
//! with an [`EditError`] before anything is sent.

use feedroll_crds::FeedRollout;
use feedroll_operator::brain::{CommandKind, revision};
use feedroll_operator::desired::{ANNOTATION_SOURCE, Source};
use feedroll_operator::observe::{ANNOTATION_COMMAND, ANNOTATION_COMMAND_AUTHOR};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};
use thiserror::Error;

/// Why a change cannot be made (nothing was sent).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EditError {
    /// `set image` got something other than `CONTAINER=IMAGE`.
    #[error("expected CONTAINER=IMAGE, got {0:?}")]
    ImageArgument(String),
    /// `set image` names a container the pod template does not have.
    #[error("the pod template has no container {container:?} (it has: {known})")]
    NoContainer {
        /// The container asked for.
        container: String,
        /// The containers there are.
        known: String,
    },
    /// `undo` without a stable revision to go back to.
    #[error("no stable revision yet: nothing to undo")]
    NoStable,
    /// `undo`: the stable Deployment does not say what it runs.
    #[error("the stable Deployment {0} has no readable {ANNOTATION_SOURCE} annotation")]
    NoSource(String),
    /// `undo`: the stable Deployment runs another revision than `status.stableRevision`.
    #[error(
        "the stable Deployment runs revision {found}, not the stable revision {want}: try again when the operator has caught up"
    )]
    StaleSource {
        /// `status.stableRevision`.
        want: String,
        /// What the Deployment records.
        found: String,
    },
    /// The object has no resourceVersion to guard the patch with.
    #[error("the FeedRollout has no resourceVersion")]
    NoResourceVersion,
}

/// A human command: the annotation value (its id) and the merge patch that sets it.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandPatch {
    /// `<verb>/<nonce>`: the id the operator applies once and records in `status.history`.
    pub id: String,
    /// JSON merge patch of `metadata.annotations`.
    pub patch: Value,
}

/// The command annotation for `kind` with a `nonce` unique to this invocation, and the author
/// annotation (removed when the author is unknown, so an earlier author is not credited).
pub fn command(kind: CommandKind, nonce: &str, author: Option<&str>) -> CommandPatch {
    let id = format!("{}/{nonce}", kind.as_str());
    let patch = json!({"metadata": {"annotations": {
        ANNOTATION_COMMAND: id,
        ANNOTATION_COMMAND_AUTHOR: author,
    }}});
    CommandPatch { id, patch }
}

/// `set image NAME CONTAINER=IMAGE`: a JSON patch that changes that container's image (in
/// `containers` or `initContainers`), guarded by the object's resourceVersion; with the old
/// image. `None` when the container already runs that image.
pub fn set_image(fr: &FeedRollout, argument: &str) -> Result<Option<(Value, String)>, EditError> {
    let (container, image) = argument
        .split_once('=')
        .filter(|(c, i)| !c.trim().is_empty() && !i.trim().is_empty())
        .ok_or_else(|| EditError::ImageArgument(argument.to_owned()))?;
    let (container, image) = (container.trim(), image.trim());
    let version = fr
        .metadata
        .resource_version
        .as_deref()
        .ok_or(EditError::NoResourceVersion)?;
    let pod = fr.spec.template.spec.as_ref();
    let lists = [
        ("containers", pod.map(|p| p.containers.as_slice())),
        (
            "initContainers",
            pod.and_then(|p| p.init_containers.as_deref()),
        ),
    ];
    for (list, containers) in lists {
        let Some((index, found)) = containers
            .unwrap_or_default()
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == container)
        else {
            continue;
        };
        let old = found.image.clone().unwrap_or_default();
        if old == image {
            return Ok(None);
        }
        let path = format!("/spec/template/spec/{list}/{index}");
        let patch = json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": version},
            {"op": "test", "path": format!("{path}/name"), "value": container},
            {"op": "add", "path": format!("{path}/image"), "value": image},
        ]);
        return Ok(Some((patch, old)));
    }
    let known: Vec<&str> = lists
        .iter()
        .flat_map(|(_, c)| c.unwrap_or_default().iter().map(|c| c.name.as_str()))
        .collect();
    Err(EditError::NoContainer {
        container: container.to_owned(),
        known: known.join(", "),
    })
}

/// `undo NAME`: a JSON patch that puts the stable revision's pod template and ranking profile
/// (as the stable Deployment records them) back into the spec, guarded by the resourceVersion;
/// with that revision. `None` when the spec already asks for the stable revision.
pub fn undo(fr: &FeedRollout, stable: &Deployment) -> Result<Option<(Value, String)>, EditError> {
    let want = fr
        .status
        .as_ref()
        .and_then(|s| s.stable_revision.clone())
        .ok_or(EditError::NoStable)?;
    if revision(&fr.spec) == want {
        return Ok(None);
    }
    let name = stable.metadata.name.clone().unwrap_or_default();
    let source = stable
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_SOURCE))
        .and_then(|text| Source::from_annotation(text))
        .ok_or(EditError::NoSource(name))?;
    let found = source.revision();
    if found != want {
        return Err(EditError::StaleSource { want, found });
    }
    let version = fr
        .metadata
        .resource_version
        .as_deref()
        .ok_or(EditError::NoResourceVersion)?;
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": version}),
        json!({"op": "replace", "path": "/spec/template", "value": source.template}),
    ];
    match (&source.ranking_profile, &fr.spec.ranking_profile) {
        (Some(profile), _) => {
            ops.push(json!({"op": "add", "path": "/spec/rankingProfile", "value": profile}));
        }
        (None, Some(_)) => ops.push(json!({"op": "remove", "path": "/spec/rankingProfile"})),
        (None, None) => {}
    }
    Ok(Some((Value::Array(ops), want)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use feedroll_crds::FeedRolloutStatus;

    fn fr(image: &str) -> FeedRollout {
        serde_json::from_value(json!({
            "apiVersion": "feedroll.dev/v1alpha1", "kind": "FeedRollout",
            "metadata": {"name": "feed", "namespace": "feed", "resourceVersion": "7"},
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "warm", "image": "warm:1"}],
                "containers": [{"name": "side", "image": "side:1"}, {"name": "feed", "image": image}]
            }}}
        }))
        .expect("a FeedRollout")
    }

    #[test]
    fn commands_carry_a_nonce_and_their_author() {
        let c = command(CommandKind::PromoteFull, "17-3", Some("alice"));
        assert_eq!(c.id, "promote-full/17-3");
        assert_eq!(
            c.patch,
            json!({"metadata": {"annotations": {"feedroll.dev/command": "promote-full/17-3", "feedroll.dev/command-author": "alice"}}})
        );
        let anonymous = command(CommandKind::Abort, "1", None);
        assert_eq!(
            anonymous.patch["metadata"]["annotations"]["feedroll.dev/command-author"],
            Value::Null
        );
    }

    #[test]
    fn set_image_patches_the_named_container_only() {
        let (patch, old) = set_image(&fr("feed:1"), "feed=feed:2").unwrap().unwrap();
        assert_eq!(old, "feed:1");
        assert_eq!(
            patch[2],
            json!({"op": "add", "path": "/spec/template/spec/containers/1/image", "value": "feed:2"})
        );
        assert_eq!(patch[0]["value"], "7");
        let (init, _) = set_image(&fr("feed:1"), "warm=warm:2").unwrap().unwrap();
        assert_eq!(
            init[2]["path"],
            "/spec/template/spec/initContainers/0/image"
        );
        assert_eq!(set_image(&fr("feed:2"), "feed=feed:2"), Ok(None));
    }

    #[test]
    fn set_image_refuses_bad_input() {
        for bad in ["feed", "=feed:2", "feed=", ""] {
            assert_eq!(
                set_image(&fr("feed:1"), bad),
                Err(EditError::ImageArgument(bad.to_owned()))
            );
        }
        let err = set_image(&fr("feed:1"), "nope=x:1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the pod template has no container \"nope\" (it has: side, feed, warm)"
        );
    }

    #[test]
    fn undo_puts_back_what_the_stable_deployment_runs() {
        let old = fr("feed:1");
        let source = Source::of(&old.spec);
        let mut now = fr("feed:2");
        now.status = Some(FeedRolloutStatus {
            stable_revision: Some(source.revision()),
            ..FeedRolloutStatus::default()
        });
        let mut stable = Deployment::default();
        stable.metadata.name = Some("feed-stable".into());
        assert_eq!(
            undo(&now, &stable),
            Err(EditError::NoSource("feed-stable".into()))
        );
        stable.metadata.annotations =
            Some([(ANNOTATION_SOURCE.to_owned(), source.to_annotation())].into());
        let (patch, rev) = undo(&now, &stable).unwrap().unwrap();
        assert_eq!(rev, source.revision());
        assert_eq!(patch[1]["path"], "/spec/template");
        assert_eq!(
            patch[1]["value"]["spec"]["containers"][1]["image"],
            "feed:1"
        );
        // Already at the stable revision: nothing to do.
        let mut back = old.clone();
        back.status = now.status.clone();
        assert_eq!(undo(&back, &stable), Ok(None));
        // Nothing stable yet.
        assert_eq!(undo(&fr("feed:2"), &stable), Err(EditError::NoStable));
    }
}
