//! Replication commands: `REPLICAOF`/`SLAVEOF`, what a replica sends its master
//! (`REPLCONF`, `PSYNC`, `SYNC`), `ROLE` and `WAIT`.

use std::sync::Arc;

use super::table::{flag::*, CommandSpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::blocking::{BlockedOp, Waiter};
use crate::cluster::id::Id;
use crate::replication::Target;

/// The replication family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("replicaof", 3, ADMIN | NOSCRIPT | STALE, "server", "Configures a server as replica of another, or promotes it to a master.", handler!(ReplicaOf)).since("5.0.0"),
    CommandSpec::new("slaveof", 3, ADMIN | NOSCRIPT | STALE, "server", "Sets a Redis server as a replica of another, or promotes it to being a master.", handler!(ReplicaOf)).since("1.0.0"),
    CommandSpec::new("replconf", -1, ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY, "server", "An internal command for configuring the replication stream.", handler!(ReplConf<'_>)).since("3.0.0"),
    CommandSpec::new("psync", -3, ADMIN | NOSCRIPT | NO_MULTI, "server", "An internal command used in replication.", handler!(Psync<'_>)).since("2.8.0"),
    CommandSpec::new("sync", 1, ADMIN | NOSCRIPT | NO_MULTI, "server", "An internal command used in replication.", handler!(Psync<'_>)).since("1.0.0"),
    CommandSpec::new("role", 1, NOSCRIPT | LOADING | STALE | FAST, "server", "Returns the replication role.", handler!(Role)).since("2.8.12"),
    CommandSpec::new("wait", 3, NOSCRIPT, "generic", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.", handler!(Wait)).since("3.0.0"),
];

/// `REPLICAOF host port | NO ONE`.
enum ReplicaOf {
    NoOne,
    Master(Target),
}

impl<'a> Command<'a> for ReplicaOf {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let host = p.arg()?;
        let port = p.arg()?;
        if host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one") {
            return Ok(ReplicaOf::NoOne);
        }
        let port = crate::protocol::number::parse_i64(port).ok_or(CommandError::NotInteger)?;
        let port = u16::try_from(port).map_err(|_| CommandError::err("Invalid master port"))?;
        let host = String::from_utf8(host.to_vec())
            .map_err(|_| CommandError::err("Invalid master host"))?;
        Ok(ReplicaOf::Master(Target { host, port }))
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if ctx.shared.cluster.enabled() {
            return Err(CommandError::err("REPLICAOF not allowed in cluster mode."));
        }
        let shared = ctx.shared;
        let replication = &shared.replication;
        match self {
            ReplicaOf::NoOne => {
                if replication.promote(&shared.data.feed, &shared.data.keyspace) {
                    tracing::info!("MASTER MODE enabled (user request)");
                }
                ctx.out.ok();
            }
            ReplicaOf::Master(target) => {
                let text = format!("{}:{}", target.host, target.port);
                let data = &shared.data;
                if replication.follow(&data.feed, &data.keyspace, &shared.config, target) {
                    tracing::info!(master = %text, "REPLICAOF: connecting to the master");
                    ctx.out.ok();
                } else {
                    ctx.out.simple("OK Already connected to specified master");
                }
            }
        }
        Ok(())
    }
}

/// `REPLCONF option value ...`.
struct ReplConf<'a> {
    pairs: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Command<'a> for ReplConf<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        if !p.remaining().is_multiple_of(2) {
            return Err(CommandError::Syntax);
        }
        let mut pairs = Vec::new();
        while p.remaining() > 0 {
            pairs.push((p.arg()?, p.arg()?));
        }
        Ok(ReplConf { pairs })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let conf = &mut ctx.session.replconf;
        for (option, value) in self.pairs {
            let option = option.to_ascii_lowercase();
            match option.as_slice() {
                b"listening-port" => {
                    let port = crate::protocol::number::parse_i64(value)
                        .and_then(|p| u16::try_from(p).ok())
                        .ok_or(CommandError::NotInteger)?;
                    conf.listening_port = Some(port);
                }
                b"capa" => conf.ringkv |= value.eq_ignore_ascii_case(b"ringkv"),
                b"node-id" => {
                    let id = std::str::from_utf8(value).ok().and_then(Id::parse);
                    conf.node = Some(id.ok_or_else(|| CommandError::err("Invalid node id"))?);
                }
                // Acknowledgements come on a replica's stream, not here: as
                // Redis, a stray one gets no reply.
                b"ack" | b"getack" => return Ok(()),
                b"ip-address" | b"rdb-only" | b"rdb-filter-only" => {}
                _ => {
                    return Err(CommandError::err(format!(
                        "Unrecognized REPLCONF option: {}",
                        String::from_utf8_lossy(&option)
                    )))
                }
            }
        }
        ctx.out.ok();
        Ok(())
    }
}

/// `PSYNC replid offset`, or `SYNC` (`PSYNC ? -1`): the connection becomes the
/// replica's stream once the reply to it is sent (see `repl_io::primary`).
struct Psync<'a> {
    replid: &'a [u8],
    offset: i64,
}

impl<'a> Command<'a> for Psync<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        if p.remaining() == 0 {
            return Ok(Psync {
                replid: b"?",
                offset: -1,
            });
        }
        Ok(Psync {
            replid: p.arg()?,
            offset: p.next_i64()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if !ctx.session.replconf.ringkv {
            return Err(CommandError::err(
                "ringkv streams replication in its own format; only ringkv replicas \
                 (REPLCONF capa ringkv) can sync",
            ));
        }
        let replication = &ctx.shared.replication;
        if replication.is_replica() && (replication.loading() || !replication.link_is_up()) {
            return Err(CommandError::NoMasterLink);
        }
        ctx.session.replconf.psync = Some((self.replid.to_vec(), self.offset));
        Ok(())
    }
}

/// `ROLE`.
struct Role;

impl Command<'_> for Role {
    fn parse(_: &mut Parser<'_>) -> Result<Self, CommandError> {
        Ok(Role)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let shared = ctx.shared;
        let replication = &shared.replication;
        let offset = shared.data.feed.offset();
        let out = &mut *ctx.out;
        match replication.ids().master {
            None => {
                let replicas = replication.replicas.list();
                out.array(3);
                out.bulk(b"master");
                out.int(offset as i64);
                out.array(replicas.len());
                for replica in replicas {
                    out.array(3);
                    out.bulk(replica.ip.to_string().as_bytes());
                    out.bulk(replica.port.to_string().as_bytes());
                    out.bulk(replica.acked().to_string().as_bytes());
                }
            }
            Some(master) => {
                let link = replication.link();
                out.array(5);
                out.bulk(b"slave");
                out.bulk(master.host.as_bytes());
                out.int(i64::from(master.port));
                out.bulk(link.state.name().as_bytes());
                let known = matches!(link.state, crate::replication::LinkState::Connected);
                out.int(if known { offset as i64 } else { -1 });
            }
        }
        Ok(())
    }
}

/// `WAIT numreplicas timeout`: replies once `numreplicas` replicas
/// acknowledged every write made before it (the stream up to the current
/// offset), or at the timeout with how many did.
struct Wait {
    replicas: usize,
    timeout_ms: u64,
}

impl Command<'_> for Wait {
    fn parse(p: &mut Parser<'_>) -> Result<Self, CommandError> {
        let replicas = p.next_i64()?;
        let timeout = p.next_i64_or("timeout is not an integer or out of range")?;
        if timeout < 0 {
            return Err(CommandError::err("timeout is negative"));
        }
        Ok(Wait {
            replicas: usize::try_from(replicas).unwrap_or(0),
            timeout_ms: timeout as u64,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let shared = ctx.shared;
        let replication = &shared.replication;
        if replication.is_replica() {
            return Err(CommandError::err(
                "WAIT cannot be used with replica instances. Please also note that since Redis \
                 4.0 if a replica is configured to be writable (which is not the default) writes \
                 to replicas are just local and are not propagated.",
            ));
        }
        let offset = shared.data.feed.offset();
        let op = BlockedOp::Replicas { offset };
        if !ctx.may_block || self.replicas == 0 {
            ctx.out.int(replication.replicas.acked(offset) as i64);
            return Ok(());
        }
        let deadline = (self.timeout_ms > 0).then(|| ctx.now + self.timeout_ms);
        let waiter = Arc::new(Waiter::new(ctx.session.handle.id, Vec::new(), op, deadline));
        // Registered before counting, so an acknowledgement in between wakes it.
        replication
            .replicas
            .wait(waiter.clone(), offset, self.replicas);
        let acked = replication.replicas.acked(offset);
        if acked >= self.replicas {
            ctx.out.int(acked as i64);
            return Ok(());
        }
        // Ask for acknowledgements now rather than at the replicas' next second.
        replication.ask_acks(&shared.data.feed);
        ctx.block = Some(waiter);
        Ok(())
    }
}
