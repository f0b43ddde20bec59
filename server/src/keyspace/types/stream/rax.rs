//! The size of the radix tree Redis would keep the stream's nodes in, for
//! `XINFO STREAM`'s `radix-tree-nodes`: ringkv keeps them in a B-tree, but
//! the figure Redis shows follows from the nodes' first ids alone.
//!
//! Redis's rax stores each first id as 16 big-endian bytes in a compressed
//! trie: a run of bytes with one way on is one compressed node, a byte where
//! keys part is one node with a child per byte, and every key ends in a leaf
//! node. An empty tree is its root alone.

use super::{Stream, StreamId};

/// Bytes of a key: an id's two numbers, big-endian.
const KEY_LEN: usize = 16;

fn key(id: StreamId) -> [u8; KEY_LEN] {
    let mut key = [0; KEY_LEN];
    key[..8].copy_from_slice(&id.ms.to_be_bytes());
    key[8..].copy_from_slice(&id.seq.to_be_bytes());
    key
}

/// Nodes of the trie holding `keys` (sorted, distinct, sharing their first
/// `depth` bytes) below the point `depth` bytes in.
fn nodes(keys: &[[u8; KEY_LEN]], depth: usize) -> u64 {
    let (first, last) = match keys {
        [] => return 0,
        [_] => return if depth == KEY_LEN { 1 } else { 2 },
        [first, .., last] => (first, last),
    };
    // Sorted keys share what the first and last share.
    let common = (depth..KEY_LEN)
        .find(|&i| first[i] != last[i])
        .unwrap_or(KEY_LEN);
    let compressed = u64::from(common > depth);
    let mut total = compressed + 1;
    let mut rest = keys;
    while let Some(head) = rest.first() {
        let same = rest.partition_point(|k| k[common] == head[common]);
        total += nodes(&rest[..same], common + 1);
        rest = &rest[same..];
    }
    total
}

impl Stream {
    /// Nodes of the radix tree Redis would hold this stream's nodes in (see
    /// the module documentation).
    pub fn radix_tree_nodes(&self) -> u64 {
        let keys: Vec<[u8; KEY_LEN]> = self.nodes.keys().map(|&id| key(id)).collect();
        match keys.is_empty() {
            true => 1,
            false => nodes(&keys, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(ids: &[(u64, u64)]) -> u64 {
        let mut keys: Vec<[u8; KEY_LEN]> =
            ids.iter().map(|&(m, s)| key(StreamId::new(m, s))).collect();
        keys.sort();
        nodes(&keys, 0)
    }

    #[test]
    fn trees_count_compressed_runs_branches_and_leaves() {
        // One key: its bytes in one compressed node, then the leaf.
        assert_eq!(count(&[(5, 0)]), 2);
        // Parting at the last byte: a run, the branch, two leaves.
        assert_eq!(count(&[(5, 0), (5, 1)]), 4);
        // Parting at the first byte: the root branches, each side a run and a leaf.
        assert_eq!(count(&[(1 << 56, 0), (2 << 56, 0)]), 5);
        assert_eq!(Stream::default().radix_tree_nodes(), 1);
    }
}
