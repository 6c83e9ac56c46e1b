//! A container's ruleset is self-contained: `include` is refused.
//!
//! libnftables runs as root and reads whatever an `include "PATH"` names, at parse time
//! (also in a dry run): `include "/etc/shadow"` would put the file's first line into the
//! syntax error netprov prints, and `include "/dev/zero"` never returns. `include` is
//! the only directive of the nft language that reads a file, so refusing it before
//! libnftables sees the text closes both.
//!
//! The check follows libnftables' scanner (`src/scanner.l`), which is the reference:
//!
//! * `#` starts a comment up to the end of the line;
//! * `"` starts a quoted string up to the next `"` (`\"[^"]*\"`: no escapes). The
//!   scanner's pattern would let a string span lines, but libnftables feeds its scanner
//!   line by line; rather than depend on that, a string here ends at the end of its line
//!   and a `"` without a closing one on its line is skipped alone — so text in a
//!   multi-line string is checked too (refusing more, never less);
//! * an identifier is `({letter}|[_.])({letter}|{digit}|[/\-_.])*`, taken longest-first:
//!   `include` is the INCLUDE keyword only when that whole run is `include` — but a
//!   digit, `-` or `/` before it ends the previous token, so `9include` and `-include`
//!   still contain the keyword.
//!
//! Keywords are case-sensitive in the scanner; `Include` is an identifier. Anything the
//! check refuses beyond that (e.g. `include*`, an interface wildcard) would be very odd
//! in a ruleset, so erring on the refusing side is fine: it must never let one through.

/// 1-based line and column of the first `include` keyword outside comments and strings.
pub fn find(text: &str) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            // A string ends at the next quote on the same line; a quote without one is
            // skipped alone (see the module doc for why multi-line is not trusted).
            b'"' => match b[i + 1..].iter().position(|&c| c == b'"' || c == b'\n') {
                Some(n) if b[i + 1 + n] == b'"' => i += n + 2,
                _ => i += 1,
            },
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'.' => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'/' | b'-' | b'_' | b'.'))
                {
                    i += 1;
                }
                if &b[start..i] == b"include" {
                    return Some(crate::error::line_col(text, start));
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The error for a ruleset with an `include` at `line:col` (never the included path).
pub fn message(line: usize, col: usize) -> String {
    format!(
        "nftables ruleset line {line} column {col}: `include` is not allowed; a container's ruleset must be self-contained (netprov does not read other files)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_the_keyword_where_the_scanner_would() {
        for (text, at) in [
            ("include \"/etc/shadow\"", Some((1, 1))),
            ("table inet t {}\n  include \"/dev/zero\"\n", Some((2, 3))),
            ("table inet t { include \"x\" }", Some((1, 16))),
            ("flush ruleset;include \"x\"", Some((1, 15))),
            ("9include \"x\"", Some((1, 2))),
            ("-include", Some((1, 2))),
            ("/include", Some((1, 2))),
            ("$include", Some((1, 2))),
            ("\"unterminated\ninclude \"x\"", Some((2, 1))),
            ("# include \"x\"\ntable inet t {}", None),
            ("table inet t { comment \"include x\" }", None),
            ("table inet t { comment \"a\nb include\" }", Some((2, 3))),
            ("table inet included {}", None),
            ("table inet my_include {}", None),
            ("table inet a.include {}", None),
            ("table inet x-include {}", None),
            ("table inet Include {}", None),
        ] {
            assert_eq!(find(text), at, "{text:?}");
        }
    }

    proptest! {
        /// Wherever `include` stands as a token between other tokens, it is found.
        #[test]
        fn include_between_tokens_is_found(
            before in "[a-z ;{}\n]{0,20}",
            sep in prop::sample::select(vec![" ", "\n", ";", "{", "\t", "}"]),
            after in "[a-z \"/.\n]{0,20}",
        ) {
            let text = format!("{before}{sep}include{sep}{after}");
            prop_assert!(find(&text).is_some(), "{text:?}");
        }

        /// Inside a comment or a quoted string it is not a directive.
        #[test]
        fn include_in_comments_and_strings_is_not(
            words in "[a-z ]{0,20}",
        ) {
            let commented = format!("# {words} include {words}\ntable inet t {{}}");
            let quoted = format!("table inet t {{ comment \"{words} include\" }}");
            prop_assert_eq!(find(&commented), None);
            prop_assert_eq!(find(&quoted), None);
        }
    }
}
