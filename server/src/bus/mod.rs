//! The cluster bus's I/O (docs/CLUSTER.md, Threads and I/O): the links between
//! nodes, each a TCP connection that set itself up and authenticated its peer
//! before carrying messages, and (to come) the bus thread that runs the
//! cluster state machine over them. Owns the bus sockets; uses `cluster` for
//! the frames and the state machine, which stay free of I/O.

pub mod link;
