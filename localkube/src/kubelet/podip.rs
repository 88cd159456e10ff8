//! Pod IPs: each pod gets its own loopback address in 127.10.0.0/16 (never 127.0.0.1: Linux
//! routes all of 127.0.0.0/8 to the loopback interface, so a process can bind any of them),
//! handed out in order and returned when the pod goes.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Addresses available: 127.10.0.1 … 127.10.255.254.
const CAPACITY: u32 = 256 * 256 - 2;

/// The allocator.
#[derive(Debug, Default)]
pub struct PodIps {
    in_use: BTreeSet<u32>,
    next: u32,
}

fn address(n: u32) -> Ipv4Addr {
    let host = n + 1;
    Ipv4Addr::new(127, 10, (host >> 8) as u8, (host & 0xff) as u8)
}

impl PodIps {
    /// An empty pool whose first address is at a random place of the range, so that two
    /// localkube processes on one machine (tests running side by side, a developer's cluster
    /// beside a test run) do not hand out, and bind, the same pod IPs.
    pub fn random_start() -> Self {
        Self {
            in_use: BTreeSet::new(),
            next: rand::random::<u32>() % CAPACITY,
        }
    }

    /// The next free address after the last one handed out (so a pod's address is not reused
    /// at once by the next pod); `None` when all 65 534 are in use.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        for i in 0..CAPACITY {
            let n = (self.next + i) % CAPACITY;
            if self.in_use.insert(n) {
                self.next = (n + 1) % CAPACITY;
                return Some(address(n));
            }
        }
        None
    }

    /// Returns `ip` to the pool (addresses it never handed out are ignored).
    pub fn release(&mut self, ip: Ipv4Addr) {
        let [a, b, c, d] = ip.octets();
        let host = (u32::from(c) << 8) | u32::from(d);
        if (a, b) == (127, 10) && host >= 1 {
            self.in_use.remove(&(host - 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_loopback_and_never_127_0_0_1() {
        let mut ips = PodIps::default();
        let a = ips.allocate().expect("free");
        let b = ips.allocate().expect("free");
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(127, 10, 0, 1), Ipv4Addr::new(127, 10, 0, 2))
        );
        ips.release(a);
        assert_eq!(
            ips.allocate(),
            Some(Ipv4Addr::new(127, 10, 0, 3)),
            "not reused at once"
        );
        ips.release(Ipv4Addr::new(10, 0, 0, 1));
        ips.release(Ipv4Addr::new(127, 10, 0, 0));
        let mut seen = BTreeSet::from([b, Ipv4Addr::new(127, 10, 0, 3)]);
        while let Some(ip) = ips.allocate() {
            assert!(ip.is_loopback() && ip != Ipv4Addr::LOCALHOST);
            assert!(seen.insert(ip), "{ip} handed out twice");
        }
        assert_eq!(seen.len(), CAPACITY as usize);
        assert!(seen.contains(&Ipv4Addr::new(127, 10, 255, 254)) && seen.contains(&a));
        ips.release(b);
        assert_eq!(
            ips.allocate(),
            Some(b),
            "a released address comes back when it is the only one"
        );
    }
}
