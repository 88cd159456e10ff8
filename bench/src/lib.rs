//! Feedroll's benchmark harness: a lean HTTP/1.1 load generator (closed-loop and open-loop,
//! coordinated-omission-free), a generated world (catalog, users, follows, event history) loaded
//! through feed-server's HTTP API, Prometheus text parsing and `/proc` readings, the ideal TTL
//! cache the hit ratio is judged by, the bracketed windows the cached feed is compared to the
//! static baseline in, the key-isolation phase's API keys (digests-only keys file) and
//! arithmetic, and where Redis's time goes in each phase (`INFO commandstats`). The binaries are
//! `feedroll-loadgen` (driven by `scripts/bench.sh`) and `feedroll-static-baseline`.

pub mod bracketed;
pub mod client;
pub mod driver;
pub mod ideal_cache;
pub mod isolation;
pub mod keys;
pub mod procfs;
pub mod prom;
pub mod redis_time;
pub mod session;
pub mod stats;
pub mod world;
pub mod zipf;
