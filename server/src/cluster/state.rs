//! This node's view of the cluster: the members, which of them it is, and the
//! ring that divides the slots among them. Membership is static for now (from
//! the configuration); gossip will drive it later through [`ClusterState::new`].

use std::path::Path;

use super::{Ring, RingConfig};
use crate::keyspace::SLOTS;

/// One master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// 40 hex characters.
    pub id: String,
    /// Client address.
    pub ip: String,
    /// Client port.
    pub port: u16,
}

/// A member list or node id file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// A member entry is not `<id> <ip>:<port>`.
    #[error("'{0}' is not <40-hex node id> <ip>:<port>")]
    BadMember(String),
    /// Two entries share an id or an address.
    #[error("'{0}' is listed twice")]
    Duplicate(String),
    /// This node is not in the member list.
    #[error("this node ({0}) is not among cluster-nodes")]
    NotAMember(String),
    /// The node id file disagrees with the member list.
    #[error(
        "node id file {path} holds {found}, but cluster-nodes lists {expected} for this address"
    )]
    IdMismatch {
        /// The file.
        path: String,
        /// Its id.
        found: String,
        /// The listed id.
        expected: String,
    },
    /// The node id file could not be read or written.
    #[error("node id file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

fn is_node_id(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses `cluster-nodes` entries.
pub fn parse_members(entries: &[String]) -> Result<Vec<Member>, ClusterError> {
    let mut members: Vec<Member> = Vec::new();
    for entry in entries {
        let bad = || ClusterError::BadMember(entry.clone());
        let mut words = entry.split_whitespace();
        let (Some(id), Some(addr), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        let (ip, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        if !is_node_id(id) || ip.parse::<std::net::IpAddr>().is_err() {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| bad())?;
        let member = Member {
            id: id.to_ascii_lowercase(),
            ip: ip.to_string(),
            port,
        };
        if members
            .iter()
            .any(|m| m.id == member.id || (m.ip == member.ip && m.port == member.port))
        {
            return Err(ClusterError::Duplicate(entry.clone()));
        }
        members.push(member);
    }
    if members.is_empty() {
        return Err(ClusterError::BadMember(String::new()));
    }
    Ok(members)
}

/// Checks (or creates) the node id file at `path` against `id`.
pub fn persist_node_id(path: &Path, id: &str) -> Result<(), ClusterError> {
    let file_error = |reason: String| ClusterError::File {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let found = text
                .lines()
                .find_map(|l| l.strip_prefix("myid "))
                .unwrap_or_default()
                .trim()
                .to_string();
            if found != id {
                return Err(ClusterError::IdMismatch {
                    path: path.display().to_string(),
                    found,
                    expected: id.to_string(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(path, format!("# ringkv node identity\nmyid {id}\n"))
                .map_err(|e| file_error(e.to_string()))
        }
        Err(e) => Err(file_error(e.to_string())),
    }
}

/// The cluster as this node sees it.
#[derive(Debug, Clone)]
pub struct ClusterState {
    members: Vec<Member>,
    myself: usize,
    ring: Ring,
    /// Index into `members` of each slot's owner.
    owners: Vec<u16>,
    bus_port: u16,
}

impl ClusterState {
    /// The state for `members`, this node being the one at `ip:port`.
    pub fn new(
        members: Vec<Member>,
        ip: &str,
        port: u16,
        bus_port: u16,
        epoch: u64,
    ) -> Result<ClusterState, ClusterError> {
        let myself = members
            .iter()
            .position(|m| m.ip == ip && m.port == port)
            .ok_or_else(|| ClusterError::NotAMember(format!("{ip}:{port}")))?;
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let ring = Ring::build(&ids, epoch, &RingConfig::default());
        let owners = (0..SLOTS as u16)
            .map(|slot| {
                let id = ring.owner(slot).unwrap_or_default();
                members.iter().position(|m| m.id == id).unwrap_or(0) as u16
            })
            .collect();
        Ok(ClusterState {
            members,
            myself,
            ring,
            owners,
            bus_port,
        })
    }

    /// This node.
    pub fn myself(&self) -> &Member {
        &self.members[self.myself]
    }

    /// Every master.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The master serving `slot`.
    pub fn owner(&self, slot: u16) -> &Member {
        &self.members[usize::from(self.owners[usize::from(slot)])]
    }

    /// True if this node serves `slot`.
    pub fn is_mine(&self, slot: u16) -> bool {
        usize::from(self.owners[usize::from(slot)]) == self.myself
    }

    /// The ring's epoch.
    pub fn epoch(&self) -> u64 {
        self.ring.epoch()
    }

    /// The cluster bus port.
    pub fn bus_port(&self) -> u16 {
        self.bus_port
    }

    /// Contiguous slot ranges `(first, last, member index)`, in slot order.
    pub fn ranges(&self) -> Vec<(u16, u16, usize)> {
        let mut ranges: Vec<(u16, u16, usize)> = Vec::new();
        for (slot, &owner) in self.owners.iter().enumerate() {
            let (slot, owner) = (slot as u16, usize::from(owner));
            match ranges.last_mut() {
                Some(last) if last.2 == owner && last.1 + 1 == slot => last.1 = slot,
                _ => ranges.push((slot, slot, owner)),
            }
        }
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<String> {
        (0..3)
            .map(|i| format!("{} 127.0.0.1:{}", format!("{i:x}").repeat(40), 7000 + i))
            .collect()
    }

    #[test]
    fn members_parse_and_every_slot_has_one_owner() {
        let members = parse_members(&entries()).unwrap();
        let state = ClusterState::new(members, "127.0.0.1", 7001, 17001, 1).unwrap();
        assert_eq!(state.myself().port, 7001);
        let ranges = state.ranges();
        assert_eq!(ranges.first().unwrap().0, 0);
        assert_eq!(ranges.last().unwrap().1, 16383);
        let covered: usize = ranges.iter().map(|r| usize::from(r.1 - r.0) + 1).sum();
        assert_eq!(covered, SLOTS);
        let mine = (0..SLOTS as u16).filter(|&s| state.is_mine(s)).count();
        assert!((4_900..6_100).contains(&mine), "{mine}");
    }

    #[test]
    fn bad_member_lists_are_refused() {
        assert!(parse_members(&["nope".into()]).is_err());
        assert!(parse_members(&[format!("{} localhost:1", "a".repeat(40))]).is_err());
        let mut twice = entries();
        twice.push(twice[0].clone());
        assert!(matches!(
            parse_members(&twice),
            Err(ClusterError::Duplicate(_))
        ));
        let members = parse_members(&entries()).unwrap();
        assert!(ClusterState::new(members, "127.0.0.1", 9999, 0, 1).is_err());
    }

    #[test]
    fn the_node_id_file_is_created_then_checked() {
        let dir = std::env::temp_dir().join(format!("ringkv-nodeid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nodes.conf");
        let id = "a".repeat(40);
        persist_node_id(&path, &id).unwrap();
        persist_node_id(&path, &id).unwrap();
        assert!(matches!(
            persist_node_id(&path, &"b".repeat(40)),
            Err(ClusterError::IdMismatch { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
