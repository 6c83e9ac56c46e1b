//! The container's own ruleset (`network.nft`), loaded through libnftables inside the
//! container netns.
//!
//! Ownership and drift: every load is ONE libnftables run — `flush ruleset`, the user's
//! text, then a marker table `inet netprov_state` whose comment records the SHA-256 of
//! the user's text and the ruleset generation this commit produces — so the kernel
//! commits all of it or nothing (nft's `-f` semantics: one netlink batch), and nothing
//! else is sent. `observe` reads the marker and the generation (`super::marker`): the
//! same generation means nobody committed since, so the ruleset is intact; otherwise it
//! falls back to the listing digest (text, stateless, terse, marker excluded), which a
//! marker with `gen=` does not record: any foreign commit in an owned netns is drift.
//!
//! That is for a netns netprov owns. In an adopted netns ([`load_adopted`]) there is no
//! `flush ruleset`: the load deletes exactly the tables the marker lists, and the marker
//! lists the tables of the new text, in the same transaction (see docs/nftables.md).
//!
//! The parts: `check` (the dry run in a scratch netns), `adopted` (loads into a
//! netns netprov does not own), `listing` (the text listing and its digest),
//! `syntax` (libnftables' errors in the user's terms).

mod adopted;
mod check;
pub mod compiled;
mod listing;
mod syntax;

use std::path::Path;

use self::check::reserved_name;
use self::listing::parse_listing;
use self::syntax::syntax_error;
use super::capture;
use super::ffi::{self, OUTPUT_STATELESS, OUTPUT_TERSE};
use super::marker;
use super::netlink::NfSocket;
use crate::error::OpError;
use crate::kernel::netns::in_netns;
use crate::marks::{NFT_MARKER_FAMILY as MARKER_FAMILY, NFT_MARKER_TABLE as MARKER_TABLE};
use crate::model::Ruleset;

pub use self::adopted::{declared_tables, load_adopted, remove_adopted, TableRef};
pub use self::check::{check_syntax, check_syntax_with_interfaces, placeholder_names};

pub(super) const PENDING: &str = "pending";

/// libnftables' own error message for a ruleset it rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftSyntaxError {
    /// The message as libnftables printed it (location, "Error: ...", the line, a caret).
    pub message: String,
    /// 1-based line of the first error in the user's text, when libnftables gave one.
    pub line: Option<usize>,
}

impl std::fmt::Display for NftSyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message.trim_end())
    }
}

impl std::error::Error for NftSyntaxError {}

/// Why [`check_syntax`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The ruleset is invalid (exit 2).
    Syntax(NftSyntaxError),
    /// The check itself could not run, e.g. no permission to make a scratch netns (exit 1).
    Op(OpError),
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::Syntax(e) => e.fmt(f),
            CheckError::Op(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CheckError {}

/// The ruleset in a container netns as netprov sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RulesetState {
    /// No netprov marker: netprov has not loaded a ruleset here (there may be tables
    /// someone else made; netprov leaves them alone until it loads one).
    Absent,
    Loaded {
        /// Digest (SHA-256, first 128 bits, hex) of the user text netprov loaded.
        source_digest: String,
        /// Digest of the live listing recorded right after the load (None if the load
        /// was interrupted before it was recorded).
        recorded_live_digest: Option<String>,
        /// Digest of the listing now.
        live_digest: String,
    },
}

impl RulesetState {
    /// Loaded by netprov and unchanged since.
    pub fn is_intact(&self) -> bool {
        matches!(self, RulesetState::Loaded { recorded_live_digest: Some(r), live_digest, .. } if r == live_digest)
    }
}

/// What an apply has to do with the container ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesetChange {
    /// Replace the whole ruleset atomically; `drifted` when the live one was edited
    /// behind netprov's back (or its load was interrupted).
    Load { drifted: bool },
    /// `nft` left the props: flush the ruleset netprov loaded.
    Remove,
}

/// SHA-256 (first 128 bits, hex) of the ruleset text, as recorded in the marker.
pub fn digest(r: &Ruleset) -> String {
    sha(r.text.as_bytes())
}

/// Hex of the first 128 bits of SHA-256: nft limits a table comment to 128 characters
/// and the marker holds two digests.
pub(super) fn sha(b: &[u8]) -> String {
    crate::marks::sha256_hex(b, 16)
}

/// Compares the desired ruleset with the observed state; `None` = nothing to do.
pub fn plan(desired: Option<&Ruleset>, observed: &RulesetState) -> Option<RulesetChange> {
    match (desired, observed) {
        (None, RulesetState::Absent) => None,
        (None, RulesetState::Loaded { .. }) => Some(RulesetChange::Remove),
        (Some(_), RulesetState::Absent) => Some(RulesetChange::Load { drifted: false }),
        (Some(r), RulesetState::Loaded { source_digest, .. }) => {
            if !observed.is_intact() {
                Some(RulesetChange::Load { drifted: true })
            } else if *source_digest != digest(r) {
                Some(RulesetChange::Load { drifted: false })
            } else {
                None
            }
        }
    }
}

/// Reads the ruleset state in the netns at `netns`: the marker and the generation
/// first (two tiny requests, see [`super::marker`]); the full listing only when the
/// generation says something was committed since netprov's load (or the marker is an
/// adopted netns's, or an older netprov's).
pub fn observe(netns: &Path) -> Result<RulesetState, OpError> {
    let op = format!("list nftables ruleset in netns {}", netns.display());
    in_netns(netns, move || -> Result<RulesetState, OpError> {
        let q = marker::read_here().map_err(|e| OpError::io(&op, &e))?;
        let Some(comment) = &q.comment else {
            return Ok(RulesetState::Absent);
        };
        if marker::recorded_generation(comment) == Some(q.generation) {
            let token = format!("gen:{}", q.generation);
            return Ok(RulesetState::Loaded {
                source_digest: comment_field(comment, "src=").unwrap_or_default(),
                recorded_live_digest: Some(token.clone()),
                live_digest: token,
            });
        }
        let res = ffi::with_ctx(|ctx| {
            ctx.set_output_flags(OUTPUT_STATELESS | OUTPUT_TERSE);
            ctx.run("list ruleset")
        })
        .map_err(|e| ctx_error(&op, e))?;
        if res.rc != 0 {
            return Err(OpError::new(&op, res.error.trim().to_owned()));
        }
        parse_listing(&res.output).map_err(|e| OpError::new(&op, e))
    })?
}

/// Replaces the ruleset in the netns at `netns` with `r` in one transaction, marker
/// included (see [`load_checked`]).
pub fn load(netns: &Path, r: &Ruleset) -> Result<(), OpError> {
    load_checked(netns, r).map_err(|e| match e {
        CheckError::Syntax(s) => OpError::new(
            format!("load nftables ruleset in netns {}", netns.display()),
            s.to_string(),
        ),
        CheckError::Op(e) => e,
    })
}

/// Replaces the ruleset in the netns at `netns` with `r`: ONE libnftables run, one
/// transaction — `flush ruleset`, the text, and the marker recording the text's digest
/// and the generation this very commit produces — so the kernel commits all of it or
/// nothing, and nothing else is sent. A refused batch is [`CheckError::Syntax`]
/// (libnftables' message in the user's terms): the transaction was aborted, the netns
/// keeps the ruleset it had. This is also the syntax check of a netns the apply creates:
/// the kernel validates exactly what it would run, with the real interfaces.
///
/// The generation: the kernel adds one per commit, so netprov reads it (g) right
/// before and records g+1. A commit by someone else in between makes the record wrong,
/// which the next observe reads as "changed since" and answers with the full listing
/// (then drift: the ruleset is reloaded) — never as intact by mistake.
///
/// Into a fresh netns this queues nothing for the kernel to destroy: no RCU grace
/// period when the sockets close (a reload's flush does queue the old ruleset).
///
/// Into a netns whose ruleset was never committed, the batch comes from the
/// compiled-ruleset cache when the same commands were loaded that way before
/// ([`compiled`]), and a libnftables run that builds a portable batch stores it there.
pub fn load_checked(netns: &Path, r: &Ruleset) -> Result<(), CheckError> {
    load_checked_with(netns, r, None)
}

/// Loads `r` into the calling thread's netns from the compiled-ruleset cache only, if
/// that netns was never committed and the cache has the batch; returns the commands
/// loaded. For a netns made ahead and not mounted yet (`kernel::netns_ahead`), whose
/// load is then found done by [`load_checked_with`]. Anything else — no cache, no
/// entry, a refusal — is `None`: the ruleset step loads it as usual.
pub fn load_cached_here(r: &Ruleset) -> Option<String> {
    let cache = compiled::Cache::from_env()?;
    if reserved_name(&r.text).is_some() {
        return None;
    }
    let sock = NfSocket::open().ok()?;
    if marker::generation_on(&sock).ok()? != compiled::FRESH_GENERATION {
        return None;
    }
    let cmds = cmds_at(&digest(r), &r.text, compiled::FRESH_GENERATION);
    let key = compiled::Key::new(&cmds);
    let batch = cache.get(&key)?;
    match sock.run_batch(&batch) {
        Ok(()) => {
            tracing::debug!("nft: loaded the cached batch {key:?} (in the netns made ahead)");
            Some(cmds)
        }
        // Committed despite the error (one transaction: the generation says)?
        Err(_) => (marker::generation_on(&sock).ok()?
            == next_generation(compiled::FRESH_GENERATION))
        .then_some(cmds),
    }
}

/// The commands of a load of `r` into a netns of generation `g`.
fn cmds_at(src: &str, text: &str, g: u32) -> String {
    format!("{PREFIX}{text}\n{}", marker_gen(src, next_generation(g)))
}

/// [`load_checked`] into a netns made ahead, where [`load_cached_here`] may have loaded
/// commands `loaded` already (into that netns, mounted at `netns` by this apply):
/// done when they are this load's into a fresh netns.
///
/// Why the load is not checked again here: the helper committed them as the netns's
/// first commit (it read the fresh generation first), so the marker records the
/// generation that commit made. A commit by anyone else since — the netns has had a
/// path only since this apply mounted it — moves the generation past the recorded
/// one, which the apply's verifying observe reads (`nft::marker`): it then lists the
/// ruleset and repairs it. That read is the check, once, instead of a visit of the
/// netns here and again there.
pub fn load_checked_with(
    netns: &Path,
    r: &Ruleset,
    loaded: Option<String>,
) -> Result<(), CheckError> {
    let op = format!("load nftables ruleset in netns {}", netns.display());
    if let Some(e) = reserved_name(&r.text) {
        return Err(CheckError::Syntax(e));
    }
    let src = digest(r);
    if loaded
        .as_ref()
        .is_some_and(|l| *l == cmds_at(&src, &r.text, compiled::FRESH_GENERATION))
    {
        return Ok(());
    }
    let user_lines = r.text.lines().count().max(1);
    let text = r.text.clone();
    in_netns(netns, move || -> Result<(), CheckError> {
        let io = |e: std::io::Error| CheckError::Op(OpError::io(&op, &e));
        // Also the probe for libnftables' exit() on a missing socket (see ffi).
        let sock = NfSocket::open().map_err(io)?;
        // The generation is read under the libnftables lock, with the commit: two
        // loads into one netns from two threads would otherwise both read g and both
        // record g+1 (the lock serializes this process; the container lock others).
        let res = ffi::locked(|lock| -> Result<ffi::RunResult, CheckError> {
            let g = marker::generation_on(&sock).map_err(io)?;
            let cmds = cmds_at(&src, &text, g);
            // Only a never-committed netns: see compiled's module doc.
            let cache = (g == compiled::FRESH_GENERATION)
                .then(compiled::Cache::from_env)
                .flatten();
            match cache {
                Some(cache) => run_cached(lock, &sock, &cache, &cmds),
                None => lock.ctx(|ctx| ctx.run_as_file(&cmds)),
            }
            .map_err(|e| CheckError::Op(ctx_error(&op, e)))
        })?;
        drop(sock);
        if res.rc != 0 {
            return Err(CheckError::Syntax(syntax_error(&res.error, user_lines)));
        }
        Ok(())
    })
    .map_err(CheckError::Op)?
}

/// Runs `cmds` in the calling thread's never-committed netns: the cached batch when
/// the cache has one for them and the kernel takes it, else libnftables, whose batch
/// is then stored.
fn run_cached(
    lock: &ffi::Locked,
    sock: &NfSocket,
    cache: &compiled::Cache,
    cmds: &str,
) -> Result<ffi::RunResult, ffi::CtxError> {
    let key = compiled::Key::new(cmds);
    if let Some(batch) = cache.get(&key) {
        match sock.run_batch(&batch) {
            Ok(()) => {
                tracing::debug!("nft: loaded the cached batch {key:?}");
                return Ok(ffi::RunResult::default());
            }
            Err(e) => {
                // A socket that failed after the send may have committed: the
                // generation says (the batch is one transaction).
                let gen = marker::generation_on(sock);
                if matches!(gen, Ok(g) if g != compiled::FRESH_GENERATION) {
                    tracing::debug!("nft: cached batch {key:?} committed, then: {}", e.err);
                    return Ok(ffi::RunResult::default());
                }
                tracing::debug!(
                    "nft: the kernel refused the cached batch {key:?}: {}",
                    e.err
                );
                cache.forget(&key);
            }
        }
    }
    lock.ctx(|ctx| {
        let (res, seen) = capture::capturing(|| ctx.run_as_file(cmds));
        if res.rc == 0 {
            cache.put(&key, &seen, ffi::library_path());
        }
        res
    })
}

/// The generation after one more commit (the kernel skips 0 when it wraps).
fn next_generation(g: u32) -> u32 {
    match g.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// The marker of a netns netprov owns: the source digest and the generation of the
/// commit that loaded it.
fn marker_gen(src: &str, gen: u32) -> String {
    format!("table {MARKER_FAMILY} {MARKER_TABLE} {{ comment \"netprov src={src} gen={gen}\"; }}\n")
}

fn comment_field(comment: &str, k: &str) -> Option<String> {
    comment
        .split_whitespace()
        .find_map(|w| w.strip_prefix(k).map(str::to_owned))
}

/// Flushes the whole ruleset in the netns at `netns` (it was netprov's: the caller only
/// calls this when [`observe`] found the marker).
pub fn remove(netns: &Path) -> Result<(), OpError> {
    let op = format!("flush nftables ruleset in netns {}", netns.display());
    let res = run_in(netns, &op, 0, "flush ruleset")?;
    if res.rc != 0 {
        return Err(OpError::new(op, res.error.trim().to_owned()));
    }
    Ok(())
}

/// `flush ruleset` on the user's first line (so libnftables' line numbers are the
/// user's), the text, then the marker table.
pub(super) fn load_commands(text: &str, src: &str, live: &str) -> String {
    format!("{PREFIX}{text}\n{}", marker(src, live))
}

pub(super) fn marker(src: &str, live: &str) -> String {
    format!(
        "table {MARKER_FAMILY} {MARKER_TABLE} {{ comment \"netprov src={src} live={live}\"; }}\n"
    )
}

fn run_in(netns: &Path, op: &str, flags: u32, cmds: &str) -> Result<ffi::RunResult, OpError> {
    let cmds = cmds.to_owned();
    let op2 = op.to_owned();
    in_netns(netns, move || {
        ffi::with_ctx(|ctx| {
            ctx.set_output_flags(flags);
            ctx.run(&cmds)
        })
        .map_err(|e| ctx_error(&op2, e))
    })?
}

pub(super) fn ctx_error(op: &str, e: ffi::CtxError) -> OpError {
    OpError {
        op: op.to_owned(),
        cause: e.cause,
        errno: e.errno,
    }
}

/// What [`load_commands`] puts before the user's first line.
pub(super) const PREFIX: &str = "flush ruleset; ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_empty_when_unchanged() {
        let r = Ruleset {
            text: "table inet f {}".into(),
        };
        let intact = RulesetState::Loaded {
            source_digest: digest(&r),
            recorded_live_digest: Some("x".into()),
            live_digest: "x".into(),
        };
        assert_eq!(plan(Some(&r), &intact), None);
        assert_eq!(plan(None, &intact), Some(RulesetChange::Remove));
        assert_eq!(plan(None, &RulesetState::Absent), None);
        let other = Ruleset {
            text: "table inet g {}".into(),
        };
        assert_eq!(
            plan(Some(&other), &intact),
            Some(RulesetChange::Load { drifted: false })
        );
        let edited = RulesetState::Loaded {
            source_digest: digest(&r),
            recorded_live_digest: Some("x".into()),
            live_digest: "y".into(),
        };
        assert_eq!(
            plan(Some(&r), &edited),
            Some(RulesetChange::Load { drifted: true })
        );
    }
}
