//! A ruleset in an *adopted* netns (one netprov does not own): never `flush ruleset`;
//! the marker lists the tables netprov loaded, and only those are replaced, removed and
//! digested.

use std::path::Path;

use super::check::reserved_name;
use super::listing::{blocks, is_marker, parse_listing};
use super::syntax::syntax_error_after;
use super::{ctx_error, digest, sha, MARKER_FAMILY, MARKER_TABLE, PENDING};
use crate::error::OpError;
use crate::kernel::netns::in_netns;
use crate::model::Ruleset;
use crate::nft::ffi::{self, OUTPUT_STATELESS, OUTPUT_TERSE};

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
    let hex = |s: &str| crate::marks::hex(s.as_bytes());
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
        .find_map(|l| l.trim().strip_prefix("chain c_")?.strip_suffix(OPENS_BLOCK))?
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
pub(super) fn own_tables(marker: &str) -> Option<Vec<TableRef>> {
    if !marker.contains(" own=tables") {
        return None;
    }
    let tables = marker
        .lines()
        .filter_map(|l| l.trim().strip_prefix("chain t_")?.strip_suffix(OPENS_BLOCK))
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
        .strip_suffix(OPENS_BLOCK)?;
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
pub(super) fn tables_digest(listing: &str, tables: &[TableRef]) -> String {
    let kept: String = blocks(listing)
        .into_iter()
        .filter(|b| block_table(b).is_some_and(|t| tables.contains(&t)))
        .collect();
    sha(kept.as_bytes())
}

/// How a listed table or chain line ends when its block opens (`table inet f {`).
const OPENS_BLOCK: &str = " {";

#[cfg(test)]
mod tests {
    use super::super::{marker, RulesetState};
    use super::*;

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
}
