//! nft's text listing (stateless, terse): its top-level blocks, the marker in it, and
//! the digest of what is not the marker.

use super::adopted::{own_tables, tables_digest};
use super::{sha, RulesetState, MARKER_FAMILY, MARKER_TABLE, PENDING};

/// Splits nft's text listing into its top-level blocks (`table … {` … `}` at column 0).
pub(super) fn blocks(listing: &str) -> Vec<String> {
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

pub(super) fn is_marker(block: &str) -> bool {
    block.starts_with(&format!("table {MARKER_FAMILY} {MARKER_TABLE} {{"))
}

/// Parses a text listing (stateless, terse) into the state.
pub(super) fn parse_listing(listing: &str) -> Result<RulesetState, String> {
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
    Ok(sha(kept.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
