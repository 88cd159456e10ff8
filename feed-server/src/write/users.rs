//! Writing a user's follows and profile; the user's next feed is ranked anew.

use super::WriteError;
use crate::model::{Follows, UserProfile, validate_id};
use crate::state::AppState;

/// Replaces `user`'s followed creators and friends and drops their cached first pages.
pub async fn set_follows(
    state: &AppState,
    user: &str,
    follows: &Follows,
) -> Result<(), WriteError> {
    validate_id("user id", user)?;
    follows.validate()?;
    state.store.set_follows(user, follows).await?;
    state.cache.invalidate_users([&user.to_owned()]);
    Ok(())
}

/// Replaces `user`'s language and region and drops their cached first pages.
pub async fn set_profile(
    state: &AppState,
    user: &str,
    profile: &UserProfile,
) -> Result<(), WriteError> {
    validate_id("user id", user)?;
    profile.validate()?;
    state.store.set_profile(user, profile).await?;
    state.cache.invalidate_users([&user.to_owned()]);
    Ok(())
}
