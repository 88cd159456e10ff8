//! Writing the catalog: a batch of videos all or nothing, a video removed.

use std::collections::HashSet;

use super::WriteError;
use crate::model::{ErrorCode, Invalid, MAX_VIDEO_BATCH, Video, validate_id};
use crate::state::AppState;

/// Checks a batch of videos: not empty, at most [`MAX_VIDEO_BATCH`], every video valid, ids
/// unique. The first failure names the video (`videos[i]`).
fn check_batch(videos: &[Video]) -> Result<(), Invalid> {
    if videos.is_empty() {
        return Err(Invalid {
            code: ErrorCode::EmptyBatch,
            message: "no videos in the body".to_owned(),
        });
    }
    if videos.len() > MAX_VIDEO_BATCH {
        return Err(Invalid {
            code: ErrorCode::BatchTooLarge,
            message: format!(
                "at most {MAX_VIDEO_BATCH} videos per request, got {}",
                videos.len()
            ),
        });
    }
    let mut ids = HashSet::new();
    for (i, v) in videos.iter().enumerate() {
        v.validate().map_err(|e| Invalid {
            code: e.code,
            message: format!("videos[{i}]: {}", e.message),
        })?;
        if !ids.insert(&*v.id) {
            return Err(Invalid {
                code: ErrorCode::DuplicateId,
                message: format!("videos[{i}]: id {:?} appears more than once", v.id),
            });
        }
    }
    Ok(())
}

/// Inserts or replaces `videos`, all or nothing; returns how many were stored.
pub async fn put_videos(state: &AppState, videos: &[Video]) -> Result<usize, WriteError> {
    check_batch(videos)?;
    state.store.put_videos(videos).await?;
    Ok(videos.len())
}

/// Removes video `id` from the catalog and every index, and drops this replica's cached feeds
/// (which may show it); `false` when the catalog did not hold it.
pub async fn delete_video(state: &AppState, id: &str) -> Result<bool, WriteError> {
    validate_id("id", id)?;
    let deleted = state.store.delete_video(id).await?;
    if deleted {
        state.cache.clear_local();
    }
    Ok(deleted)
}
