//! `MIGRATE` (docs/CLUSTER.md, M4): sends keys to another node as `RESTORE`
//! commands (`RESTORE-ASKING` in a cluster) over a kept link, with the keys'
//! slots held for the whole exchange, then deletes here those the target took.
//!
//! The exchange blocks the worker thread that runs it, as Redis's blocks its
//! one thread: the worker's other clients wait, the other workers go on.

use std::time::Duration;

use super::table::{flag::*, CommandSpec, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::keyspace::dump_value;
use crate::migration::{timed_out, Link, MigrateLinks};
use crate::protocol::encode_command;

/// The migrate family.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "migrate",
    -6,
    WRITE | OPEN_SLOTS,
    "generic",
    "Atomically transfers a key from one Redis instance to another.",
    handler!(Migrate<'_>),
)
.keys(KeySpec::MIGRATE)
.since("2.6.0")];

/// The timeout Redis uses when given none (0 or less), in milliseconds.
const DEFAULT_TIMEOUT_MS: u64 = 1000;

/// `MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
/// [AUTH password | AUTH2 username password] [KEYS key ...]`.
struct Migrate<'a> {
    host: &'a [u8],
    port: &'a [u8],
    keys: Vec<&'a [u8]>,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    /// `AUTH password` (no user) or `AUTH2 user password`.
    auth: Option<(Option<&'a [u8]>, &'a [u8])>,
}

impl<'a> Command<'a> for Migrate<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let host = p.arg()?;
        let port = p.arg()?;
        let key = p.arg()?;
        let db = p.next_i64()?;
        let timeout = p.next_i64()?;
        let timeout = u64::try_from(timeout)
            .ok()
            .filter(|&t| t > 0)
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        let mut migrate = Migrate {
            host,
            port,
            keys: vec![key],
            db,
            timeout: Duration::from_millis(timeout),
            copy: false,
            replace: false,
            auth: None,
        };
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "COPY" => migrate.copy = true,
                "REPLACE" => migrate.replace = true,
                "AUTH" => {
                    let password = p.try_arg().ok_or(CommandError::Syntax)?;
                    migrate.auth = Some((None, password));
                }
                "AUTH2" => {
                    let user = p.try_arg().ok_or(CommandError::Syntax)?;
                    let password = p.try_arg().ok_or(CommandError::Syntax)?;
                    migrate.auth = Some((Some(user), password));
                }
                "KEYS" => {
                    if !key.is_empty() {
                        return Err(CommandError::err(
                            "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                        ));
                    }
                    migrate.keys = p.rest().iter().collect();
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(migrate)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let now = ctx.now;
        // Keys that expired since the request came are not sent (Redis's
        // second look at their TTLs).
        let mut moving = Vec::with_capacity(self.keys.len());
        for &key in &self.keys {
            let Some(entry) = ctx.locks.table(key).peek(key, now) else {
                continue;
            };
            let ttl = entry
                .expire_at()
                .map_or(0, |at| at.saturating_sub(now).max(1));
            moving.push((key, ttl, dump_value(entry.value)));
        }
        if moving.is_empty() {
            ctx.out.simple("NOKEY");
            return Ok(());
        }
        let restore: &[u8] = match ctx.shared.cluster.enabled() {
            true => b"RESTORE-ASKING",
            false => b"RESTORE",
        };
        let mut restores = Vec::new();
        for (key, ttl, payload) in &moving {
            let ttl = itoa::Buffer::new().format(*ttl).to_owned();
            let mut args: Vec<&[u8]> = vec![restore, key, ttl.as_bytes(), payload];
            if self.replace {
                args.push(b"REPLACE");
            }
            encode_command(&mut restores, &args);
        }
        let answer = self.exchange(&ctx.shared.migrate_links, &restores, moving.len());
        if !self.copy {
            let mut deleted: Vec<&[u8]> = vec![b"DEL"];
            for (&(key, ..), _) in moving.iter().zip(&answer.taken).filter(|(_, &t)| t) {
                ctx.locks.table(key).remove(key, now);
                ctx.left(key);
                deleted.push(key);
            }
            if deleted.len() > 1 {
                ctx.propagate(&deleted);
            }
        }
        match answer.error {
            Some(err) => Err(err),
            None => {
                ctx.out.ok();
                Ok(())
            }
        }
    }
}

/// How the target answered: which keys it took, and the error to reply, if
/// any (the target's first, or the link's).
struct Answer {
    taken: Vec<bool>,
    error: Option<CommandError>,
}

impl Answer {
    fn failed(keys: usize, error: CommandError) -> Answer {
        Answer {
            taken: vec![false; keys],
            error: Some(error),
        }
    }
}

/// How one attempt over a link ended.
enum Attempt {
    Answered(Answer),
    /// The link broke before the target answered anything, for a reason other
    /// than a timeout: a kept link the target closed meanwhile is the usual
    /// cause, so Redis tries once more on a new one.
    Broke(Answer),
}

impl Migrate<'_> {
    /// Sends the request, on a new link a second time if a kept one broke
    /// before anything was answered (as Redis does).
    fn exchange(&self, links: &MigrateLinks, restores: &[u8], keys: usize) -> Answer {
        let mut retried = false;
        loop {
            let port = std::str::from_utf8(self.port)
                .ok()
                .and_then(|p| p.parse::<u16>().ok());
            let host = String::from_utf8_lossy(self.host);
            let link = port.and_then(|port| links.take(&host, port, self.timeout).ok());
            let Some(mut link) = link else {
                return Answer::failed(keys, CommandError::Io("connecting to the client"));
            };
            match self.attempt(&mut link, restores, keys) {
                Attempt::Answered(answer) => {
                    if answer.error.is_none() {
                        link.db = Some(self.db);
                    }
                    links.put_back(link);
                    return answer;
                }
                Attempt::Broke(answer) if retried => return answer,
                Attempt::Broke(_) => retried = true,
            }
        }
    }

    /// One exchange over `link`. An answer with a broken link drops it.
    fn attempt(&self, link: &mut Link, restores: &[u8], keys: usize) -> Attempt {
        let mut setup = Vec::new();
        if let Some((user, password)) = self.auth {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            args.extend(user);
            args.push(password);
            encode_command(&mut setup, &args);
        }
        let select = link.db != Some(self.db);
        if select {
            let db = itoa::Buffer::new().format(self.db).to_owned();
            encode_command(&mut setup, &[b"SELECT", db.as_bytes()]);
        }
        let timeout = self.timeout;
        let sent = link
            .send(&setup, timeout)
            .and_then(|()| link.send(restores, timeout));
        if let Err(err) = sent {
            let answer = Answer::failed(keys, CommandError::Io("writing to target instance"));
            return match timed_out(&err) {
                true => Attempt::Answered(broken(link, answer)),
                false => Attempt::Broke(answer),
            };
        }
        let reading = || Answer::failed(keys, CommandError::Io("reading to target instance"));
        // A refused AUTH or SELECT fails every key, with its text.
        let mut refused = None;
        for _ in 0..usize::from(self.auth.is_some()) + usize::from(select) {
            match link.line(timeout) {
                Ok(line) if line.starts_with(b"-") => refused = refused.or(Some(line)),
                Ok(_) => {}
                Err(err) if timed_out(&err) => return Attempt::Answered(broken(link, reading())),
                Err(_) => return Attempt::Broke(reading()),
            }
        }
        let setup_refused = refused.is_some();
        let mut answer = Answer {
            taken: vec![false; keys],
            error: None,
        };
        for i in 0..keys {
            match link.line(timeout) {
                Ok(line) if setup_refused || line.starts_with(b"-") => {
                    refused = refused.or(Some(line));
                }
                Ok(_) => answer.taken[i] = true,
                Err(err) => {
                    answer.error = refused.as_deref().map(target_error);
                    if i == 0 && answer.error.is_none() && !timed_out(&err) {
                        return Attempt::Broke(reading());
                    }
                    answer.error = answer.error.or(reading().error);
                    return Attempt::Answered(broken(link, answer));
                }
            }
        }
        answer.error = refused.as_deref().map(target_error);
        if answer.error.is_some() {
            link.db = None;
        }
        Attempt::Answered(answer)
    }
}

/// Marks `link` broken (never kept: its replies may be out of step) and
/// passes `answer` on.
fn broken(link: &mut Link, answer: Answer) -> Answer {
    link.set_broken();
    answer
}

/// The reply for an error line (`-BUSYKEY ...`) the target sent.
fn target_error(line: &[u8]) -> CommandError {
    let text = String::from_utf8_lossy(line.strip_prefix(b"-").unwrap_or(line));
    CommandError::err(format!("Target instance replied with error: {text}"))
}
