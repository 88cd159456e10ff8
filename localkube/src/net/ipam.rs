//! Loopback address allocation: ClusterIPs for Services, addresses for Gateway listeners.
//! Pure bookkeeping — which key holds which address — with no socket in sight.
//!
//! A range is a `/16` of `127.0.0.0/8` (every address of it routes to `lo` on Linux). An
//! allocator starts at a random offset, so two clusters on one machine (parallel tests) are
//! unlikely to hand out the same address; the supervisor still treats a failed bind as an error
//! it reports, not as a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The second octet of the range Services get their ClusterIPs from: `127.20.x.y`.
pub const SERVICE_RANGE: u8 = 20;
/// The second octet of the range HTTPRoute parents get their addresses from: `127.30.x.y`.
pub const GATEWAY_RANGE: u8 = 30;

/// Why an address could not be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// Every address of the range is taken.
    #[error("the range 127.{0}.0.0/16 is exhausted")]
    Exhausted(u8),
    /// A requested address is outside the range.
    #[error("{ip} is not in the range 127.{range}.0.0/16")]
    OutOfRange {
        /// The requested address.
        ip: Ipv4Addr,
        /// The range's second octet.
        range: u8,
    },
    /// A requested address is held by another key.
    #[error("{0} is already allocated")]
    Taken(Ipv4Addr),
}

/// Addresses of one `127.R.0.0/16` range, by owner key (e.g. `namespace/name`).
#[derive(Debug, Clone)]
pub struct Allocator {
    range: u8,
    next: u16,
    by_key: BTreeMap<String, Ipv4Addr>,
    held: BTreeSet<Ipv4Addr>,
}

/// Host part 0 (`127.R.0.0`) and 65535 (`127.R.255.255`) are never given.
fn usable(host: u16) -> bool {
    host != 0 && host != u16::MAX
}

impl Allocator {
    /// An empty allocator of `127.range.0.0/16` whose first address is at host part `start`.
    pub fn new(range: u8, start: u16) -> Self {
        Self {
            range,
            next: start,
            by_key: BTreeMap::new(),
            held: BTreeSet::new(),
        }
    }

    /// An empty allocator starting at a random place of the range.
    pub fn random_start(range: u8) -> Self {
        Self::new(range, rand::random::<u16>())
    }

    fn addr(&self, host: u16) -> Ipv4Addr {
        let [hi, lo] = host.to_be_bytes();
        Ipv4Addr::new(127, self.range, hi, lo)
    }

    /// The address `key` holds, if any.
    pub fn get(&self, key: &str) -> Option<Ipv4Addr> {
        self.by_key.get(key).copied()
    }

    /// The address of `key`: the one it holds, else `requested` (when in the range and free),
    /// else the next free one.
    pub fn allocate(
        &mut self,
        key: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.get(key) {
            return Ok(ip);
        }
        if let Some(ip) = requested {
            let o = ip.octets();
            if o[0] != 127 || o[1] != self.range || !usable(u16::from_be_bytes([o[2], o[3]])) {
                return Err(IpamError::OutOfRange {
                    ip,
                    range: self.range,
                });
            }
            if self.held.contains(&ip) {
                return Err(IpamError::Taken(ip));
            }
            self.hold(key, ip);
            return Ok(ip);
        }
        for _ in 0..=u16::MAX {
            let host = self.next;
            self.next = self.next.wrapping_add(1);
            let ip = self.addr(host);
            if usable(host) && !self.held.contains(&ip) {
                self.hold(key, ip);
                return Ok(ip);
            }
        }
        Err(IpamError::Exhausted(self.range))
    }

    fn hold(&mut self, key: &str, ip: Ipv4Addr) {
        self.by_key.insert(key.to_owned(), ip);
        self.held.insert(ip);
    }

    /// Gives `key`'s address back.
    pub fn release(&mut self, key: &str) -> Option<Ipv4Addr> {
        let ip = self.by_key.remove(key)?;
        self.held.remove(&ip);
        Some(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_keeps_its_address_and_keys_never_share_one() {
        let mut a = Allocator::new(SERVICE_RANGE, 1);
        let x = a.allocate("ns/x", None).unwrap();
        let y = a.allocate("ns/y", None).unwrap();
        assert_eq!(x, Ipv4Addr::new(127, 20, 0, 1));
        assert_eq!(y, Ipv4Addr::new(127, 20, 0, 2));
        assert_eq!(a.allocate("ns/x", None).unwrap(), x);
        assert_eq!(a.release("ns/x"), Some(x));
        assert_eq!(a.get("ns/x"), None);
        // A released address is given again only after the others.
        assert_eq!(
            a.allocate("ns/z", None).unwrap(),
            Ipv4Addr::new(127, 20, 0, 3)
        );
    }

    #[test]
    fn the_wrap_skips_the_network_and_broadcast_addresses() {
        let mut a = Allocator::new(GATEWAY_RANGE, u16::MAX);
        assert_eq!(a.allocate("a", None).unwrap(), Ipv4Addr::new(127, 30, 0, 1));
    }

    #[test]
    fn a_requested_address_is_honoured_when_free_and_in_range() {
        let mut a = Allocator::new(SERVICE_RANGE, 1);
        let want = Ipv4Addr::new(127, 20, 9, 9);
        assert_eq!(a.allocate("ns/redis", Some(want)).unwrap(), want);
        assert_eq!(
            a.allocate("ns/other", Some(want)),
            Err(IpamError::Taken(want))
        );
        let outside = Ipv4Addr::new(10, 96, 0, 10);
        assert!(matches!(
            a.allocate("ns/other", Some(outside)),
            Err(IpamError::OutOfRange { .. })
        ));
        assert!(
            a.allocate("ns/other", Some(Ipv4Addr::new(127, 20, 0, 0)))
                .is_err()
        );
    }

    #[test]
    fn a_full_range_is_an_error() {
        let mut a = Allocator::new(SERVICE_RANGE, 1);
        for i in 0..(u16::MAX as usize - 1) {
            a.allocate(&i.to_string(), None).unwrap();
        }
        assert_eq!(
            a.allocate("one more", None),
            Err(IpamError::Exhausted(SERVICE_RANGE))
        );
    }
}
