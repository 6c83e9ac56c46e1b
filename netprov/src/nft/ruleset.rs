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

use std::os::fd::AsRawFd;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::ffi::{self, OUTPUT_STATELESS, OUTPUT_TERSE};
use super::marker;
use crate::error::OpError;
use crate::kernel::netns::in_netns;
use crate::model::{IfName, Ruleset};

/// Family and name of the marker table netprov adds to every ruleset it loads. A user
/// ruleset must not define it.
pub const MARKER_FAMILY: &str = "inet";
pub const MARKER_TABLE: &str = "netprov_state";
const PENDING: &str = "pending";

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
    hex(&Sha256::digest(r.text.as_bytes()))
}

/// Hex of the first 128 bits: nft limits a table comment to 128 characters and the
/// marker holds two digests.
fn hex(b: &[u8]) -> String {
    b.iter().take(16).map(|x| format!("{x:02x}")).collect()
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

/// Checks `text` with a libnftables dry run, exactly as [`load`] would submit it, on a
/// thread inside a throwaway netns: the dry run parses, evaluates and sends the batch to
/// the kernel *without* the batch-end message, so the kernel validates and aborts it —
/// and the throwaway netns makes sure no real ruleset is even read. Needs CAP_SYS_ADMIN
/// (to unshare the netns).
///
/// A ruleset that names interfaces by index (`iif`, `oif`, netdev hooks) needs them to
/// exist: use [`check_syntax_with_interfaces`] with the container's interface names.
pub fn check_syntax(text: &str) -> Result<(), CheckError> {
    check_syntax_with_interfaces(text, &[])
}

/// [`check_syntax`] with placeholder interfaces of these names in the throwaway netns
/// (non-persistent tun devices, gone with the check), so `iif lan` resolves as it will
/// in the container.
pub fn check_syntax_with_interfaces(text: &str, ifnames: &[IfName]) -> Result<(), CheckError> {
    if let Some(e) = reserved_name(text) {
        return Err(CheckError::Syntax(e));
    }
    let user_lines = text.lines().count().max(1);
    let cmds = load_commands(text, &hex(&Sha256::digest(text.as_bytes())), PENDING);
    let names: Vec<IfName> = ifnames.to_vec();
    let handle = std::thread::Builder::new()
        .name("nft-check".into())
        .spawn(move || -> Result<ffi::RunResult, OpError> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                OpError::errno(
                    "create a scratch netns to check the nftables ruleset",
                    e as i32,
                )
            })?;
            let _placeholders = names
                .iter()
                .map(placeholder_interface)
                .collect::<Result<Vec<_>, _>>()?;
            ffi::with_ctx(|ctx| {
                ctx.set_dry_run(true);
                ctx.run_as_file(&cmds)
            })
            .map_err(|e| ctx_error("check nftables ruleset", e))
        })
        .map_err(|e| CheckError::Op(OpError::io("spawn nftables check thread", &e)))?;
    let res = handle
        .join()
        .map_err(|_| CheckError::Op(OpError::new("check nftables ruleset", "thread panicked")))?
        .map_err(CheckError::Op)?;
    if res.rc == 0 {
        Ok(())
    } else {
        Err(CheckError::Syntax(syntax_error(&res.error, user_lines)))
    }
}

/// The interfaces of `d` that the ruleset names (placeholders for a dry run in a
/// scratch netns: `iif lan` needs `lan` to exist). Only those: each placeholder costs a
/// device, and its teardown waits for the kernel.
pub fn placeholder_names(d: &crate::model::Desired, r: &Ruleset) -> Vec<IfName> {
    d.interfaces
        .iter()
        .flat_map(|i| {
            std::iter::once(i.name.clone()).chain(i.macvlan.iter().map(|m| m.name.clone()))
        })
        .filter(|n| mentions(&r.text, n.as_str()))
        .collect()
}

/// `name` occurs in `text` as a whole word (interface-name characters on neither side).
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// The marker table's name is netprov's; a ruleset that uses it would clobber (or be
/// clobbered by) the marker.
fn reserved_name(text: &str) -> Option<NftSyntaxError> {
    // Also the self-containment rule (see include.rs): checked again here, right before
    // libnftables would read the text, whoever built the Ruleset.
    if let Some((line, col)) = super::include::find(text) {
        return Some(NftSyntaxError {
            message: super::include::message(line, col),
            line: Some(line),
        });
    }
    let (i, _) = text.lines().enumerate().find(|(_, l)| {
        l.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == MARKER_TABLE)
    })?;
    Some(NftSyntaxError {
        message: format!(
            "nft:{}: Error: the table name {MARKER_TABLE} is reserved for netprov's marker",
            i + 1
        ),
        line: Some(i + 1),
    })
}

/// A tun device named `name` in the calling thread's netns, alive while the file is.
fn placeholder_interface(name: &IfName) -> Result<std::fs::File, OpError> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca; // _IOW('T', 202, int)
    let op = || format!("create placeholder interface {name} to check the nftables ruleset");
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| OpError::io(op(), &e))?;
    // struct ifreq: char ifr_name[16]; then a union whose first member here is
    // short ifr_flags.
    let mut ifr = [0u8; 40];
    ifr[..name.as_str().len()].copy_from_slice(name.as_str().as_bytes());
    let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: TUNSETIFF reads/writes an ifreq, which `ifr` is large enough to hold.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
    if rc < 0 {
        return Err(OpError::io(op(), &std::io::Error::last_os_error()));
    }
    Ok(tun)
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
pub fn load_checked(netns: &Path, r: &Ruleset) -> Result<(), CheckError> {
    let op = format!("load nftables ruleset in netns {}", netns.display());
    if let Some(e) = reserved_name(&r.text) {
        return Err(CheckError::Syntax(e));
    }
    let src = digest(r);
    let user_lines = r.text.lines().count().max(1);
    let text = r.text.clone();
    in_netns(netns, move || -> Result<(), CheckError> {
        let io = |e: std::io::Error| CheckError::Op(OpError::io(&op, &e));
        // Also the probe for libnftables' exit() on a missing socket (see ffi).
        let sock = super::netlink::NfSocket::open().map_err(io)?;
        // The generation is read under the libnftables lock, with the commit: two
        // loads into one netns from two threads would otherwise both read g and both
        // record g+1 (the lock serializes this process; the container lock others).
        let res = ffi::with_ctx_unprobed(|ctx| -> Result<ffi::RunResult, CheckError> {
            let g = marker::generation_on(&sock).map_err(io)?;
            let cmds = format!("{PREFIX}{text}\n{}", marker_gen(&src, next_generation(g)));
            Ok(ctx.run_as_file(&cmds))
        })
        .map_err(|e| CheckError::Op(ctx_error(&op, e)))??;
        drop(sock);
        if res.rc != 0 {
            return Err(CheckError::Syntax(syntax_error(&res.error, user_lines)));
        }
        Ok(())
    })
    .map_err(CheckError::Op)?
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

/// Loads `r` into an *adopted* netns: never `flush ruleset`. One transaction deletes
/// exactly the tables netprov loaded before (recorded in the marker; `add table X;
/// delete table X` is idempotent), adds the user's text and a marker that lists the
/// tables the text declares, so foreign tables survive and a crash cannot leave
/// netprov's tables unrecorded. A table the text declares that exists and is not
/// netprov's is refused (loading would merge into it). The live digest covers only
/// netprov's tables: a foreign table changing is not drift. The marker names container
/// `id`: a netns whose marker names another container is refused (one adopted netns,
/// one netprov ruleset).
pub fn load_adopted(netns: &Path, r: &Ruleset, id: &str) -> Result<(), OpError> {
    let op = format!("load nftables ruleset in netns {}", netns.display());
    if let Some(e) = reserved_name(&r.text) {
        return Err(OpError::new(op, e.message));
    }
    let tables = declared_tables(&r.text).map_err(|e| OpError::new(&op, e))?;
    let src = digest(r);
    let user_lines = r.text.lines().count().max(1);
    let text = r.text.clone();
    let id = id.to_owned();
    in_netns(netns, move || -> Result<(), OpError> {
        ffi::with_ctx(|ctx| -> Result<(), OpError> {
            ctx.set_output_flags(OUTPUT_STATELESS | OUTPUT_TERSE);
            let listed = list(ctx, &op)?;
            if let Some(other) = marker_owner(&listed).filter(|o| *o != id) {
                return Err(OpError::new(
                    &op,
                    format!("netprov manages the nftables ruleset of this netns for container {other}; two containers cannot both load one into the same adopted netns"),
                ));
            }
            let prev = netprovs_tables(&listed, &op)?;
            if let Some(t) = tables
                .iter()
                .find(|t| table_names(&listed).contains(t) && !prev.contains(t))
            {
                return Err(OpError::new(
                    &op,
                    format!(
                        "table {t} already exists in this adopted netns and is not netprov's; refusing to load into it (rename the table in network.nft)"
                    ),
                ));
            }
            let prefix = delete_prefix(&prev);
            let cmds = format!("{prefix}{text}
{}", adopted_marker(&src, PENDING, &tables, &id));
            let res = ctx.run_as_file(&cmds);
            if res.rc != 0 {
                return Err(OpError::new(
                    &op,
                    syntax_error_after(&res.error, user_lines, &prefix).to_string(),
                ));
            }
            let listed = list(ctx, &op)?;
            let live = tables_digest(&listed, &tables);
            let rec = ctx.run(&format!(
                "delete table {MARKER_FAMILY} {MARKER_TABLE}\n{}",
                adopted_marker(&src, &live, &tables, &id)
            ));
            if rec.rc != 0 {
                return Err(OpError::new(
                    format!("record nftables ruleset digest: {op}"),
                    rec.error.trim().to_owned(),
                ));
            }
            Ok(())
        })
        .map_err(|e| ctx_error(&op, e))?
    })?
}

/// Removes what netprov loaded for container `id` in an *adopted* netns: exactly its
/// recorded tables and the marker, in one transaction. Returns whether there was
/// anything: nothing recorded, or recorded for another container, is left alone.
pub fn remove_adopted(netns: &Path, id: &str) -> Result<bool, OpError> {
    let op = format!(
        "remove nftables tables netprov loaded in netns {}",
        netns.display()
    );
    let id = id.to_owned();
    in_netns(netns, move || -> Result<bool, OpError> {
        ffi::with_ctx(|ctx| -> Result<bool, OpError> {
            ctx.set_output_flags(OUTPUT_STATELESS | OUTPUT_TERSE);
            let listed = list(ctx, &op)?;
            if !blocks(&listed).iter().any(|b| is_marker(b))
                || marker_owner(&listed).is_some_and(|o| o != id)
            {
                return Ok(false);
            }
            let prev = netprovs_tables(&listed, &op)?;
            let res = ctx.run(&delete_prefix(&prev));
            if res.rc != 0 {
                return Err(OpError::new(&op, res.error.trim().to_owned()));
            }
            Ok(true)
        })
        .map_err(|e| ctx_error(&op, e))?
    })?
}

fn list(ctx: &mut ffi::Ctx, op: &str) -> Result<String, OpError> {
    let listed = ctx.run("list ruleset");
    if listed.rc != 0 {
        return Err(OpError::new(op, listed.error.trim().to_owned()));
    }
    Ok(listed.output)
}

/// One line that deletes these tables and the marker if they exist.
fn delete_prefix(tables: &[TableRef]) -> String {
    let marker = TableRef {
        family: MARKER_FAMILY.into(),
        name: MARKER_TABLE.into(),
    };
    tables
        .iter()
        .chain(std::iter::once(&marker))
        .map(|t| format!("add table {t}; delete table {t}; "))
        .collect()
}

/// The tables netprov loaded, from the listing's marker. A marker written by an older
/// netprov (which always flushed the ruleset) does not list them: while its listing is
/// intact every table is netprov's; once changed, netprov cannot tell and refuses.
fn netprovs_tables(listing: &str, op: &str) -> Result<Vec<TableRef>, OpError> {
    let Some(marker) = blocks(listing).into_iter().find(|b| is_marker(b)) else {
        return Ok(Vec::new());
    };
    if let Some(t) = own_tables(&marker) {
        return Ok(t);
    }
    match parse_listing(listing).map_err(|e| OpError::new(op, e))? {
        st if st.is_intact() => Ok(table_names(listing)),
        _ => Err(OpError::new(
            op,
            format!(
                "the ruleset was loaded by an older netprov (flush ruleset) and changed since, so netprov cannot tell its tables from foreign ones; delete netprov's tables and table {MARKER_FAMILY} {MARKER_TABLE} by hand, then apply again"
            ),
        )),
    }
}

/// An nftables table: family and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub family: String,
    pub name: String,
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.family, self.name)
    }
}

const FAMILIES: [&str; 6] = ["ip", "ip6", "inet", "arp", "bridge", "netdev"];

/// The tables a ruleset text creates: `table [family] name { … }` and `add|create table
/// [family] name` at the top level (family `ip` when omitted). The syntax check runs the
/// text in an empty netns, so a valid text creates every table it touches this way.
/// `include` is refused: the included tables could not be known.
pub fn declared_tables(text: &str) -> Result<Vec<TableRef>, String> {
    let mut out: Vec<TableRef> = Vec::new();
    for stmt in top_level_statements(text) {
        let words: Vec<&str> = stmt.iter().map(|w| w.trim_matches('"')).collect();
        let rest = match words.as_slice() {
            ["include", ..] => {
                return Err("include is not supported in an adopted netns: netprov must know which tables it loads".into())
            }
            ["table", rest @ ..] => rest,
            ["add" | "create", "table", rest @ ..] => rest,
            _ => continue,
        };
        let t = match rest {
            [f, name, ..] if FAMILIES.contains(f) => TableRef {
                family: (*f).into(),
                name: (*name).into(),
            },
            [name, ..] => TableRef {
                family: "ip".into(),
                name: (*name).into(),
            },
            [] => continue,
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The words of each top-level statement (outside braces; `#` comments dropped;
/// statements end at a newline, `;` or a top-level `{`).
fn top_level_statements(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    let flush_word = |w: &mut String, cur: &mut Vec<String>, depth: usize| {
        if !w.is_empty() && depth == 0 {
            cur.push(std::mem::take(w));
        }
        w.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                flush_word(&mut word, &mut cur, depth);
                if depth == 0 && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '"' => {
                word.push(c);
                for c in chars.by_ref() {
                    word.push(c);
                    if c == '"' {
                        break;
                    }
                }
            }
            '{' => {
                flush_word(&mut word, &mut cur, depth);
                if depth == 0 && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                depth += 1;
            }
            '}' => {
                flush_word(&mut word, &mut cur, depth);
                depth = depth.saturating_sub(1);
            }
            '\n' | ';' => {
                flush_word(&mut word, &mut cur, depth);
                if depth == 0 && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c if c.is_whitespace() => flush_word(&mut word, &mut cur, depth),
            c => word.push(c),
        }
    }
    flush_word(&mut word, &mut cur, depth);
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The marker of an adopted netns: the digests, `own=tables`, and one empty chain per
/// table netprov loaded, named `t_<family>_<hex of the name>` (a table comment holds at
/// most 128 characters; chain names are identifiers of up to 256), and one chain
/// `c_<hex of the container id>` naming the container it was loaded for.
fn adopted_marker(src: &str, live: &str, tables: &[TableRef], id: &str) -> String {
    let hex = |s: &str| -> String { s.bytes().map(|b| format!("{b:02x}")).collect() };
    let chains: String = tables
        .iter()
        .map(|t| format!("  chain t_{}_{} {{\n  }}\n", t.family, hex(&t.name)))
        .chain(std::iter::once(format!("  chain c_{} {{\n  }}\n", hex(id))))
        .collect();
    format!(
        "table {MARKER_FAMILY} {MARKER_TABLE} {{\n  comment \"netprov src={src} live={live} own=tables\"\n{chains}}}\n"
    )
}

/// The container an adopted-netns marker in `listing` was written for.
fn marker_owner(listing: &str) -> Option<String> {
    let marker = blocks(listing).into_iter().find(|b| is_marker(b))?;
    let hex = marker
        .lines()
        .find_map(|l| l.trim().strip_prefix("chain c_")?.strip_suffix(" {"))?
        .to_owned();
    unhex(&hex)
}

fn unhex(hex: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The tables an adopted-netns marker records; `None` for a whole-ruleset marker.
fn own_tables(marker: &str) -> Option<Vec<TableRef>> {
    if !marker.contains(" own=tables") {
        return None;
    }
    let tables = marker
        .lines()
        .filter_map(|l| l.trim().strip_prefix("chain t_")?.strip_suffix(" {"))
        .filter_map(|c| {
            let (family, hex) = c.split_once('_')?;
            Some(TableRef {
                family: family.into(),
                name: unhex(hex)?,
            })
        })
        .collect();
    Some(tables)
}

/// The family and name of a listed table block (`table inet filter {`).
fn block_table(block: &str) -> Option<TableRef> {
    let head = block
        .lines()
        .next()?
        .strip_prefix("table ")?
        .strip_suffix(" {")?;
    let (family, name) = head.split_once(' ')?;
    Some(TableRef {
        family: family.into(),
        name: name.trim_matches('"').into(),
    })
}

/// Every table in a listing but the marker.
fn table_names(listing: &str) -> Vec<TableRef> {
    blocks(listing)
        .iter()
        .filter(|b| !is_marker(b))
        .filter_map(|b| block_table(b))
        .collect()
}

/// Digest of the listing of exactly these tables.
fn tables_digest(listing: &str, tables: &[TableRef]) -> String {
    let kept: String = blocks(listing)
        .into_iter()
        .filter(|b| block_table(b).is_some_and(|t| tables.contains(&t)))
        .collect();
    hex(&Sha256::digest(kept.as_bytes()))
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
fn load_commands(text: &str, src: &str, live: &str) -> String {
    format!("{PREFIX}{text}\n{}", marker(src, live))
}

fn marker(src: &str, live: &str) -> String {
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

fn ctx_error(op: &str, e: ffi::CtxError) -> OpError {
    OpError {
        op: op.to_owned(),
        cause: e.cause,
        errno: e.errno,
    }
}

/// What [`load_commands`] puts before the user's first line.
const PREFIX: &str = "flush ruleset; ";

/// Builds the error from libnftables' message, e.g.
/// `nft:3:5-9: Error: syntax error, ...` (see `Ctx::run_as_file`), in terms of the
/// user's text (`user_lines` long): errors libnftables reports in netprov's own additions
/// — the marker table after the text, which only fails as a consequence of an earlier
/// error — are dropped, and on line 1 the `flush ruleset; ` prefix is taken out of the
/// columns, the quoted line and the caret.
fn syntax_error(msg: &str, user_lines: usize) -> NftSyntaxError {
    syntax_error_after(msg, user_lines, PREFIX)
}

/// [`syntax_error`] for a load whose first line starts with `prefix`.
fn syntax_error_after(msg: &str, user_lines: usize, prefix: &str) -> NftSyntaxError {
    let mut out: Vec<String> = Vec::new();
    let mut keep = true;
    let mut first_line_block = false;
    let mut line = None;
    for l in msg.lines() {
        if let Some((n, cols, rest)) = location(l) {
            keep = n <= user_lines;
            first_line_block = n == 1;
            if keep {
                line.get_or_insert(n);
                let cols = if first_line_block {
                    shift_cols(cols, prefix.len())
                } else {
                    cols.to_owned()
                };
                out.push(format!("nft:{n}:{cols}{rest}"));
            }
        } else if keep {
            let l = match (first_line_block, l.strip_prefix(prefix)) {
                (true, Some(src)) => src.to_owned(),
                // The caret line under the quoted line 1: the same shift.
                (true, None) if l.trim_start().starts_with('^') && l.len() >= prefix.len() => {
                    l[prefix.len()..].to_owned()
                }
                _ => l.to_owned(),
            };
            out.push(l);
        }
    }
    if out.is_empty() {
        out.push(msg.trim_end().to_owned());
    }
    NftSyntaxError {
        message: out.join("\n"),
        line,
    }
}

/// Splits `nft:LINE:COLS: rest` into (LINE, "COLS", ": rest").
fn location(l: &str) -> Option<(usize, &str, &str)> {
    let r = l.strip_prefix("nft:")?;
    let (n, r) = r.split_once(':')?;
    let n = n.parse().ok()?;
    let end = r.find(':')?;
    Some((n, &r[..end], &r[end..]))
}

/// `95-95` → `80-80`: columns of line 1 without a prefix `len` long.
fn shift_cols(cols: &str, len: usize) -> String {
    cols.split('-')
        .map(|c| match c.parse::<usize>() {
            Ok(v) if v > len => (v - len).to_string(),
            _ => c.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Splits nft's text listing into its top-level blocks (`table … {` … `}` at column 0).
fn blocks(listing: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in listing.lines() {
        cur.push_str(line);
        cur.push('\n');
        if line == "}" {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

fn is_marker(block: &str) -> bool {
    block.starts_with(&format!("table {MARKER_FAMILY} {MARKER_TABLE} {{"))
}

/// Parses a text listing (stateless, terse) into the state.
fn parse_listing(listing: &str) -> Result<RulesetState, String> {
    let Some(marker) = blocks(listing).into_iter().find(|b| is_marker(b)) else {
        return Ok(RulesetState::Absent);
    };
    let comment = marker
        .lines()
        .find_map(|l| l.trim().strip_prefix("comment \""))
        .unwrap_or("")
        .trim_end_matches('"')
        .to_owned();
    let field = |k: &str| {
        comment
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k).map(str::to_owned))
    };
    let live_digest = match own_tables(&marker) {
        Some(tables) => tables_digest(listing, &tables),
        None => listing_digest(listing)?,
    };
    Ok(RulesetState::Loaded {
        source_digest: field("src=").unwrap_or_default(),
        recorded_live_digest: field("live=").filter(|l| l != PENDING),
        live_digest,
    })
}

/// Digest of a text listing without the marker table. The listing is stateless (no
/// counter values) and terse (no set elements), so traffic does not change it.
fn listing_digest(listing: &str) -> Result<String, String> {
    let kept: String = blocks(listing)
        .into_iter()
        .filter(|b| !is_marker(b))
        .collect();
    Ok(hex(&Sha256::digest(kept.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_whole_words_only() {
        assert!(mentions("iif lan accept", "lan"));
        assert!(mentions("iifname \"lan\" accept", "lan"));
        assert!(!mentions("iif lan0 accept", "lan"));
        assert!(!mentions("iif wlan accept", "lan"));
        assert!(!mentions("table inet filter {}", "lan"));
    }

    #[test]
    fn syntax_error_line() {
        let e = syntax_error(
            "nft:3:5-9: Error: syntax error, unexpected junk\n  junk\n    ^^^^^\n",
            3,
        );
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().contains("unexpected junk"));
    }

    #[test]
    fn syntax_error_hides_netprovs_additions() {
        let msg = "nft:1:20-20: Error: syntax error, unexpected '}'\n\
                   flush ruleset; table inet f { }}\n\
                   \x20                  ^\n\
                   nft:2:1-5: Error: syntax error, unexpected table\n\
                   table inet netprov_state { comment \"x\"; }\n\
                   ^^^^^\n";
        let e = syntax_error(msg, 1);
        assert_eq!(e.line, Some(1));
        let m = e.to_string();
        assert!(
            m.starts_with("nft:1:5-5: Error: syntax error, unexpected '}'"),
            "{m}"
        );
        assert!(m.contains("\ntable inet f { }}\n"), "{m}");
        assert!(
            !m.contains("flush ruleset") && !m.contains("netprov_state"),
            "{m}"
        );
    }

    #[test]
    fn listing_digest_ignores_the_marker() {
        let a = "table inet f {\n\tchain c {\n\t}\n}\ntable inet netprov_state {\n\tcomment \"netprov src=ab live=cd\"\n}\n";
        let b = "table inet f {\n\tchain c {\n\t}\n}\n";
        assert_eq!(listing_digest(a).unwrap(), listing_digest(b).unwrap());
        let st = parse_listing(a).unwrap();
        assert!(
            matches!(&st, RulesetState::Loaded { source_digest, recorded_live_digest: Some(l), .. } if source_digest == "ab" && l == "cd")
        );
        assert!(!st.is_intact());
        assert_eq!(parse_listing(b).unwrap(), RulesetState::Absent);
    }

    fn t(family: &str, name: &str) -> TableRef {
        TableRef {
            family: family.into(),
            name: name.into(),
        }
    }

    #[test]
    fn declared_tables_are_the_top_level_table_statements() {
        let text = "# table inet commented { }\n\
                    define X = 1\n\
                    table inet filter {\n  chain input { type filter hook input priority 0; }\n}\n\
                    add table ip6 \"odd name\"; add chain ip6 \"odd name\" c\n\
                    table nat { chain c { comment \"table inet nope\"; } }\n\
                    create table bridge br\n\
                    add rule inet filter input accept\n\
                    table inet filter { }\n";
        assert_eq!(
            declared_tables(text).unwrap(),
            [
                t("inet", "filter"),
                t("ip6", "odd name"),
                t("ip", "nat"),
                t("bridge", "br")
            ]
        );
        assert!(declared_tables("include \"/etc/x.nft\"\n").is_err());
    }

    #[test]
    fn adopted_marker_round_trips_its_tables_and_digests_only_them() {
        let tables = [t("inet", "filter"), t("ip6", "odd name")];
        let marker = adopted_marker("ab", "cd", &tables, "web.1")
            .replace("  ", "\t")
            .replace("\t}\n", "\t}\n\n");
        assert_eq!(own_tables(&marker).unwrap(), tables);
        assert_eq!(marker_owner(&marker).as_deref(), Some("web.1"));
        assert_eq!(own_tables(&marker_text()), None);
        let ours = "table inet filter {\n\tchain c {\n\t}\n}\n";
        let foreign_a = "table inet theirs {\n}\n";
        let foreign_b = "table inet theirs {\n\tchain x {\n\t}\n}\n";
        assert_eq!(
            tables_digest(&format!("{ours}{foreign_a}{marker}"), &tables),
            tables_digest(&format!("{foreign_b}{ours}"), &tables)
        );
        let st = parse_listing(&format!("{ours}{foreign_a}{marker}")).unwrap();
        assert!(
            matches!(&st, RulesetState::Loaded { live_digest, .. } if *live_digest == tables_digest(ours, &tables))
        );
        assert_eq!(
            delete_prefix(&tables[..1]),
            "add table inet filter; delete table inet filter; add table inet netprov_state; delete table inet netprov_state; "
        );
    }

    fn marker_text() -> String {
        marker("ab", "cd")
    }

    #[test]
    fn marker_name_is_reserved() {
        let e = reserved_name("table inet f {}\ntable inet netprov_state {}\n").unwrap();
        assert_eq!(e.line, Some(2));
        assert!(reserved_name("table inet netprov_statex {}").is_none());
    }

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
