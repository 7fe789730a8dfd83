//! The overflow lane's places, shared out by the peer's address: one
//! address (an IPv6 /64) holds at most [`PER_ADDRESS`] of them, so that
//! clients sending nothing from one host cannot take every place and keep
//! an orchestrator's probes, which come from another, out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Places in the overflow lane.
pub const PLACES: usize = 64;

/// Places one address may hold at once: probes come one or two at a time.
pub const PER_ADDRESS: usize = 8;

/// Who holds how many places.
#[derive(Debug, Default)]
pub struct OverflowLane {
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// A place, given back when dropped.
#[derive(Debug)]
pub struct Place {
    lane: Arc<OverflowLane>,
    holder: IpAddr,
}

impl OverflowLane {
    /// A place for a connection from `peer`, unless the lane is full or
    /// `peer`'s address already holds its share.
    pub fn enter(self: &Arc<Self>, peer: IpAddr) -> Option<Place> {
        let holder = holder(peer);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = held.values().sum();
        let mine = held.entry(holder).or_insert(0);
        if total >= PLACES || *mine >= PER_ADDRESS {
            if *mine == 0 {
                held.remove(&holder);
            }
            return None;
        }
        *mine += 1;
        Some(Place {
            lane: self.clone(),
            holder,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.lane.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.holder) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.holder);
            }
        }
    }
}

/// The address a share is counted for: IPv4 as it is (also when mapped into
/// IPv6), IPv6 by its /64, which one host usually holds whole.
fn holder(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_holds_its_share_and_others_still_enter() {
        let lane = Arc::new(OverflowLane::default());
        let mine: Vec<_> = (0..PER_ADDRESS)
            .map(|_| lane.enter(ip("10.0.0.1")).expect("within the share"))
            .collect();
        assert!(lane.enter(ip("10.0.0.1")).is_none(), "beyond the share");
        assert!(lane.enter(ip("10.0.0.2")).is_some(), "another address");
        drop(mine);
        assert!(lane.enter(ip("10.0.0.1")).is_some(), "places come back");
        assert!(lane.held.lock().unwrap().is_empty());
    }

    #[test]
    fn the_lane_holds_at_most_its_places() {
        let lane = Arc::new(OverflowLane::default());
        let mut places = Vec::new();
        for host in 0..=(PLACES / PER_ADDRESS) {
            for _ in 0..PER_ADDRESS {
                if let Some(p) = lane.enter(ip(&format!("10.0.1.{host}"))) {
                    places.push(p);
                }
            }
        }
        assert_eq!(places.len(), PLACES);
        assert!(lane.enter(ip("10.0.2.1")).is_none());
        assert!(
            !lane.held.lock().unwrap().contains_key(&ip("10.0.2.1")),
            "a refused address leaves nothing behind"
        );
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64_and_mapped_ipv4_as_ipv4() {
        let lane = Arc::new(OverflowLane::default());
        let _held: Vec<_> = (0..PER_ADDRESS)
            .map(|i| lane.enter(ip(&format!("2001:db8:1:2::{i:x}"))).unwrap())
            .collect();
        assert!(lane.enter(ip("2001:db8:1:2:ffff::1")).is_none());
        assert!(lane.enter(ip("2001:db8:1:3::1")).is_some());
        let _v4: Vec<_> = (0..PER_ADDRESS)
            .map(|_| lane.enter(ip("192.0.2.7")).unwrap())
            .collect();
        assert!(lane.enter(ip("::ffff:192.0.2.7")).is_none());
    }
}
