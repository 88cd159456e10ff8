//! The integration tests of `feed-server`, one test binary (one link, shared
//! monomorphisations): each module was its own `tests/*.rs` binary before.

#[macro_use]
mod common;
mod api;
mod auth;
mod binary;
mod checkpoints;
mod cluster;
mod contract_bounds;
mod decayed_adds;
mod events_stream;
mod faults;
mod profiles;
mod ranking;
mod redis_tls;
mod replay;
mod replicas;
mod round_trips;
mod sorted_sets;
mod state_reads;
mod tune;
mod warmup;
