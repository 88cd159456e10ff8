//! Replicas that agree: every write of a user's own state (events, follows, profile) moves the
//! user's version `P{u:<user>}:ver` and publishes `<version> <user>` on the channel `Pwrites`,
//! in the same transaction as the write (one script call per transaction, however many users
//! it writes: [`users_written`]): when the write is acknowledged the announcement is out. Each
//! replica listens on its own connection ([`listen`]) and hands what it hears to a
//! [`PeerWrites`] (the feed cache drops the user's in-process first page).
//!
//! Pub/sub delivers at most once, so the listener only vouches for what it heard while it was
//! subscribed and answering: it reports `listening(false)` the moment its connection fails or a
//! ping goes unanswered within [`PING_TIMEOUT`] (sent every [`PING_EVERY`]), and
//! `listening(true)` only after it has subscribed again; the cache does not use its in-process
//! first pages in between and drops them all when listening resumes. On a cluster the channel is
//! broadcast to every node, so the listener subscribes on any seed node (the next one after a
//! failure).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::Cmd;
use tokio_util::sync::CancellationToken;

use super::UserVersion;

/// Moves each user's version (`KEYS[i]`) and publishes `<version> <user>` on `ARGV[1]`
/// (`ARGV[i + 1]` is the user of `KEYS[i]`); returns how many users it announced. A refused
/// publish (an ACL user without the channel) does not fail the write it goes with: the version
/// still moves, so the store tier stays right, and the listeners, refused too, keep their
/// replicas off the in-process tier. One call for all the users of a transaction: each script
/// call costs Redis more than the `INCR` and `PUBLISH` it runs (an event POST names ~5 users).
const USERS_WRITTEN: &str = r#"
for i, key in ipairs(KEYS) do
  local v = redis.call('INCR', key)
  redis.pcall('PUBLISH', ARGV[1], v .. ' ' .. ARGV[i + 1])
end
return #KEYS
"#;

/// How often a listening connection is pinged (a silent connection may be a dead one).
const PING_EVERY: Duration = Duration::from_millis(250);

/// The longest wait for a ping's answer (the store timeout when shorter). With [`PING_EVERY`] it
/// bounds how long a replica may go on serving in-process heads after its listening connection
/// died silently: 750 ms.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// The longest wait between two attempts to subscribe again.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// What a replica does with the writes of every replica (the server hands them to its feed
/// cache: [`crate::cache::FeedCache::peer_wrote`]).
#[async_trait]
pub trait PeerWrites: Send + Sync + 'static {
    /// `user`'s own state was written by some replica and is now at `version`.
    async fn user_written(&self, user: &str, version: UserVersion);
    /// Whether every write announced from now on will be heard: `false` when the listening
    /// connection failed (announcements may be lost), `true` once subscribed again.
    fn listening(&self, live: bool);
}

/// The script call moving the versions of `users` (`(version key, user)`) and announcing each
/// on `channel`; goes in the transaction of the users' writes. On a Redis Cluster a call names
/// one user (one slot); `None` when `users` is empty.
pub(super) fn users_written<'u>(
    channel: &str,
    users: impl IntoIterator<Item = (String, &'u str)>,
) -> Option<Cmd> {
    let (keys, users): (Vec<String>, Vec<&str>) = users.into_iter().unzip();
    if keys.is_empty() {
        return None;
    }
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(USERS_WRITTEN)
        .arg(keys.len())
        .arg(keys)
        .arg(channel)
        .arg(users);
    Some(cmd)
}

/// The user and version of an announcement (`<version> <user>`; the user id may hold spaces);
/// `None` for anything else.
fn parse(payload: &[u8]) -> Option<(UserVersion, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (version, user) = text.split_once(' ')?;
    Some((UserVersion(version.parse().ok()?), user))
}

/// Listens on `channel` through `clients` (one server, or a cluster's seed nodes tried in turn)
/// until `stop`, reporting to `peers`; each call bounded by `timeout`.
pub(super) async fn listen(
    clients: Vec<redis::Client>,
    channel: String,
    timeout: Duration,
    peers: Arc<dyn PeerWrites>,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(50);
    for client in clients.iter().cycle() {
        let session = async {
            match subscribe(client, &channel, timeout).await {
                Ok(pubsub) => {
                    delay = Duration::from_millis(50);
                    relay(pubsub, timeout, peers.as_ref()).await
                }
                Err(e) => e,
            }
        };
        let reason = tokio::select! {
            _ = stop.cancelled() => return,
            reason = session => reason,
        };
        peers.listening(false);
        tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "not hearing user writes of other replicas; cached first pages are read from the store until listening again");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// A connection subscribed to `channel`, within `timeout`.
async fn subscribe(
    client: &redis::Client,
    channel: &str,
    timeout: Duration,
) -> Result<redis::aio::PubSub, String> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no subscription within {} ms", timeout.as_millis())),
    }
}

/// Hands every announcement to `peers` (after reporting it listening) until the connection
/// fails or a ping is not answered within `timeout`; returns why it stopped.
async fn relay(pubsub: redis::aio::PubSub, timeout: Duration, peers: &dyn PeerWrites) -> String {
    let (mut sink, mut messages) = pubsub.split();
    peers.listening(true);
    let ping_timeout = timeout.min(PING_TIMEOUT);
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(m) => match parse(m.get_payload_bytes()) {
                    Some((version, user)) => peers.user_written(user, version).await,
                    None => tracing::warn!(channel = m.get_channel_name(), "ignoring a malformed write announcement"),
                },
                None => return "the listening connection closed".to_owned(),
            },
            _ = ping.tick() => match tokio::time::timeout(ping_timeout, sink.ping::<redis::Value>()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return e.to_string(),
                Err(_) => return format!("no answer to a ping within {} ms", ping_timeout.as_millis()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_names_the_version_and_the_whole_user_id() {
        assert_eq!(parse(b"7 u1"), Some((UserVersion(7), "u1")));
        assert_eq!(parse(b"12 a user"), Some((UserVersion(12), "a user")));
        for bad in [&b"u1"[..], b"x u1", b"-1 u1", b"", b"\xff u1"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
