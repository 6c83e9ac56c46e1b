//! libnftables' error messages, in terms of the user's text.

use super::{NftSyntaxError, PREFIX};

/// Builds the error from libnftables' message, e.g.
/// `nft:3:5-9: Error: syntax error, ...` (see `Ctx::run_as_file`), in terms of the
/// user's text (`user_lines` long): errors libnftables reports in netprov's own additions
/// — the marker table after the text, which only fails as a consequence of an earlier
/// error — are dropped, and on line 1 the `flush ruleset; ` prefix is taken out of the
/// columns, the quoted line and the caret.
pub(super) fn syntax_error(msg: &str, user_lines: usize) -> NftSyntaxError {
    syntax_error_after(msg, user_lines, PREFIX)
}

/// [`syntax_error`] for a load whose first line starts with `prefix`.
pub(super) fn syntax_error_after(msg: &str, user_lines: usize, prefix: &str) -> NftSyntaxError {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
