//! Where Redis's time goes in a phase: `INFO commandstats` read before and after it, the
//! difference per command and per request. This is how BENCHMARKS.md attributes Redis's CPU per
//! request to commands, taken in every run rather than by hand.
//!
//! Redis counts a command's time where it runs: `EXEC` and the script commands (`EVAL`,
//! `EVALSHA`, `FCALL`) include the time of the commands they run, and those commands are also
//! counted under their own names. So the rows overlap and do not add up to Redis's CPU; a row of
//! an enclosing command says how long its calls blocked Redis, a row of a plain command what
//! that command cost wherever it ran ([`CommandTime::encloses`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One command's totals since Redis started (or since `CONFIG RESETSTAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandTotals {
    /// `calls`.
    pub calls: u64,
    /// `usec`: microseconds spent in the command.
    pub usec: u64,
}

/// Every command's totals at one instant, by name as Redis reports it (lower case; a
/// subcommand as `config|resetstat`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandStats(pub BTreeMap<String, CommandTotals>);

impl CommandStats {
    /// Reads the text of `INFO commandstats` (`cmdstat_<name>:calls=N,usec=U,…` lines; other
    /// lines and fields are ignored, a line without `calls` or `usec` is skipped).
    pub fn parse(info: &str) -> Self {
        let mut out = BTreeMap::new();
        for line in info.lines() {
            let Some((name, fields)) = line
                .trim()
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let field = |key: &str| {
                fields
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == key)
                    .and_then(|(_, v)| v.parse::<u64>().ok())
            };
            if let (Some(calls), Some(usec)) = (field("calls"), field("usec")) {
                out.insert(name.to_owned(), CommandTotals { calls, usec });
            }
        }
        Self(out)
    }

    /// Whether the statistics were reset (`CONFIG RESETSTAT`, a restart) after `earlier`: some
    /// command's totals went down, or a command counted then is gone.
    pub fn reset_since(&self, earlier: &Self) -> bool {
        earlier.0.iter().any(|(name, before)| {
            self.0
                .get(name)
                .is_none_or(|now| now.calls < before.calls || now.usec < before.usec)
        })
    }

    /// What was counted between `earlier` and `self`. After a reset in between every command
    /// counts from zero: the totals in `self` (what was counted before the reset is lost).
    pub fn since(&self, earlier: &Self) -> Self {
        let reset = self.reset_since(earlier);
        Self(
            self.0
                .iter()
                .filter_map(|(name, now)| {
                    let before = match earlier.0.get(name) {
                        Some(before) if !reset => *before,
                        _ => CommandTotals::default(),
                    };
                    let d = CommandTotals {
                        calls: now.calls - before.calls,
                        usec: now.usec - before.usec,
                    };
                    (d.calls > 0).then(|| (name.clone(), d))
                })
                .collect(),
        )
    }
}

/// A command's share of a phase, per request of the phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandTime {
    /// The command, as Redis names it.
    pub command: String,
    /// Calls per request.
    pub calls_per_req: f64,
    /// Microseconds per call.
    pub us_per_call: f64,
    /// Microseconds per request (calls per request × µs per call).
    pub us_per_req: f64,
    /// Whether the command's time includes commands it runs (`EXEC`, scripts), which are
    /// listed too.
    pub encloses: bool,
}

/// Whether Redis counts the commands `command` runs inside its own time.
pub fn encloses(command: &str) -> bool {
    matches!(
        command,
        "exec" | "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// The `top` commands of `delta` by time, per request of `requests` (none when no request).
pub fn per_request(delta: &CommandStats, requests: u64, top: usize) -> Vec<CommandTime> {
    if requests == 0 {
        return Vec::new();
    }
    let n = requests as f64;
    let mut rows: Vec<CommandTime> = delta
        .0
        .iter()
        .map(|(command, t)| CommandTime {
            command: command.clone(),
            calls_per_req: t.calls as f64 / n,
            us_per_call: t.usec as f64 / t.calls.max(1) as f64,
            us_per_req: t.usec as f64 / n,
            encloses: encloses(command),
        })
        .collect();
    rows.sort_by(|a, b| {
        b.us_per_req
            .total_cmp(&a.us_per_req)
            .then_with(|| a.command.cmp(&b.command))
    });
    rows.truncate(top);
    rows
}

/// Reads `INFO commandstats` of the Redis at a URL.
#[derive(Clone)]
pub struct Reader {
    conn: redis::aio::MultiplexedConnection,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    /// Connects to `url` (`redis://…`, `rediss://…`) and reads the statistics once, so that a
    /// Redis that refuses `INFO` (an ACL user without it) is reported before the run starts.
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_multiplexed_async_connection().await?;
        let reader = Self { conn };
        reader.read().await?;
        Ok(reader)
    }

    /// Every command's totals now.
    pub async fn read(&self) -> Result<CommandStats, redis::RedisError> {
        let mut conn = self.conn.clone();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await?;
        Ok(CommandStats::parse(&info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# Commandstats\r\n\
        cmdstat_exec:calls=10,usec=2000,usec_per_call=200.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_zincrby:calls=100,usec=550,usec_per_call=5.50,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_config|resetstat:calls=1,usec=71,usec_per_call=71.00,rejected_calls=0,failed_calls=0\r\n";

    const AFTER: &str = "# Commandstats\r\n\
        cmdstat_exec:calls=30,usec=6000,usec_per_call=200.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_zincrby:calls=160,usec=850,usec_per_call=5.31,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_get:calls=20,usec=20,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_config|resetstat:calls=1,usec=71,usec_per_call=71.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_broken:usec=5\r\n";

    #[test]
    fn parses_every_command_line_and_skips_the_rest() {
        let stats = CommandStats::parse(AFTER);
        assert_eq!(stats.0.len(), 4, "{stats:?}");
        assert_eq!(
            stats.0["zincrby"],
            CommandTotals {
                calls: 160,
                usec: 850
            }
        );
        assert_eq!(stats.0["config|resetstat"].calls, 1);
        assert!(!stats.0.contains_key("broken"), "no calls field");
        assert_eq!(
            CommandStats::parse("# Commandstats\r\n"),
            CommandStats::default()
        );
    }

    #[test]
    fn a_phase_counts_what_grew_and_a_reset_counts_from_zero() {
        let d = CommandStats::parse(AFTER).since(&CommandStats::parse(BEFORE));
        assert_eq!(
            d.0["exec"],
            CommandTotals {
                calls: 20,
                usec: 4000
            }
        );
        assert_eq!(
            d.0["zincrby"],
            CommandTotals {
                calls: 60,
                usec: 300
            }
        );
        assert_eq!(
            d.0["get"],
            CommandTotals {
                calls: 20,
                usec: 20
            },
            "new since"
        );
        assert!(
            !d.0.contains_key("config|resetstat"),
            "no calls in the phase"
        );
        let (before, after) = (CommandStats::parse(BEFORE), CommandStats::parse(AFTER));
        assert!(!after.reset_since(&before));
        // Reset between the readings: the later totals are the phase's, for every command,
        // also one whose count regrew past the earlier reading.
        let regrown = CommandStats::parse(
            "cmdstat_exec:calls=40,usec=9000\r\ncmdstat_zincrby:calls=5,usec=20\r\n",
        );
        assert!(regrown.reset_since(&after), "zincrby went down");
        let d = regrown.since(&after);
        assert_eq!(
            d.0["exec"],
            CommandTotals {
                calls: 40,
                usec: 9000
            }
        );
        assert_eq!(d.0["zincrby"], CommandTotals { calls: 5, usec: 20 });
        // A command counted before and gone now: reset too.
        let gone = CommandStats::parse("cmdstat_exec:calls=31,usec=6100\r\n");
        assert!(gone.reset_since(&after));
    }

    #[test]
    fn rows_are_per_request_by_time_and_flag_enclosing_commands() {
        let d = CommandStats::parse(AFTER).since(&CommandStats::parse(BEFORE));
        let rows = per_request(&d, 20, 2);
        assert_eq!(rows.len(), 2, "the top two");
        assert_eq!(rows[0].command, "exec");
        assert!(rows[0].encloses);
        assert_eq!(rows[0].calls_per_req, 1.0);
        assert_eq!(rows[0].us_per_call, 200.0);
        assert_eq!(rows[0].us_per_req, 200.0);
        assert_eq!(rows[1].command, "zincrby");
        assert!(!rows[1].encloses);
        assert_eq!(rows[1].calls_per_req, 3.0);
        assert_eq!(rows[1].us_per_call, 5.0);
        assert_eq!(rows[1].us_per_req, 15.0);
        assert!(per_request(&d, 0, 5).is_empty(), "no request, no rows");
    }
}
