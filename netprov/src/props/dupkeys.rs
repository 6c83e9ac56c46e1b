//! Duplicate keys in one JSON object are refused.
//!
//! serde_json silently keeps the last value of a repeated map key (`interfaces`,
//! `sysctl`, `external_ids`) and stops at the first repeated struct field with one
//! position only. A repeated key is almost always an edit mistake (two `"wan"`
//! interfaces, a sysctl set twice), so every one is reported with both positions and
//! the JSON path, before serde sees the text.
//!
//! The scan assumes nothing about validity: on anything that is not well-formed JSON it
//! gives up and returns no problems, and the parser reports the syntax error.

use std::borrow::Cow;
use std::collections::HashMap;

use super::errors::{key_path, problem};
use crate::error::Invalid;

/// Nesting deeper than this is not scanned (serde_json refuses it anyway, at 128).
const DEPTH_MAX: usize = 128;

/// Keys of one object compared one by one up to this many, hashed beyond: most objects
/// have a handful, and a map of thousands must not cost a comparison per pair.
const LINEAR_MAX: usize = 16;

/// Every repeated key of every object in `text`, located at its second occurrence.
///
/// The scan is on every file netprov reads, so it allocates only when it finds a
/// problem: keys are borrowed from the text unless they hold an escape, and the JSON
/// path of a member is only spelled out for a report. (Allocating both for every key
/// made this scan 7 % of a no-op apply's own instructions; now 2 %. callgrind,
/// docs/benchmarks.md round 9.)
pub fn check(text: &str) -> Vec<Invalid> {
    let mut s = Scan {
        b: text.as_bytes(),
        text,
        i: 0,
        errs: Vec::new(),
    };
    s.ws();
    match s.value(&Path::Root, 0) {
        Some(()) => s.errs,
        None => Vec::new(),
    }
}

/// Where a value is: a chain through the scan's stack, spelled out only for a report.
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    /// The JSON path as the other problems name it (`network.interfaces.wan`,
    /// `sysctl["net.ipv4.ip_forward"]`, `routes[1].to`).
    fn spell(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Key(Path::Root, k) => key_path("", k).trim_start_matches('.').to_owned(),
            Path::Key(parent, k) => key_path(&parent.spell(), k),
            Path::Index(parent, n) => format!("{}[{n}]", parent.spell()),
        }
    }
}

/// The keys of one object so far, with the byte offset of each.
#[derive(Default)]
struct Seen<'t> {
    few: Vec<(Cow<'t, str>, usize)>,
    many: HashMap<Cow<'t, str>, usize>,
}

impl<'t> Seen<'t> {
    /// Records `key` at `at`; returns where it was before, if it was.
    fn insert(&mut self, key: Cow<'t, str>, at: usize) -> Option<usize> {
        if self.many.is_empty() {
            if let Some(e) = self.few.iter_mut().find(|(k, _)| *k == key) {
                return Some(std::mem::replace(&mut e.1, at));
            }
            if self.few.len() < LINEAR_MAX {
                self.few.push((key, at));
                return None;
            }
            self.many.extend(self.few.drain(..));
        }
        self.many.insert(key, at)
    }
}

struct Scan<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
    errs: Vec<Invalid>,
}

impl<'t> Scan<'t> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn value(&mut self, path: &Path<'_>, depth: usize) -> Option<()> {
        if depth > DEPTH_MAX {
            return None;
        }
        self.ws();
        match *self.b.get(self.i)? {
            b'{' => self.object(path, depth),
            b'[' => self.array(path, depth),
            b'"' => self.string().map(|_| ()),
            _ => {
                let start = self.i;
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| !matches!(c, b',' | b']' | b'}') && !c.is_ascii_whitespace())
                {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }

    /// A string starting at `self.i`; returns its byte range (quotes included) and
    /// whether it holds an escape.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.i;
        self.i += 1;
        let mut escaped = false;
        loop {
            let rest = self.b.get(self.i..)?;
            self.i += rest.iter().position(|&c| c == b'"' || c == b'\\')?;
            if self.b[self.i] == b'"' {
                self.i += 1;
                return Some((start, self.i, escaped));
            }
            escaped = true;
            self.i += 2;
        }
    }

    /// The key at `s..e` (quotes included), decoded.
    fn key(&self, s: usize, e: usize, escaped: bool) -> Option<Cow<'t, str>> {
        let text: &'t str = self.text;
        if escaped {
            serde_json::from_str(&text[s..e]).ok().map(Cow::Owned)
        } else {
            text.get(s + 1..e - 1).map(Cow::Borrowed)
        }
    }

    fn object(&mut self, path: &Path<'_>, depth: usize) -> Option<()> {
        self.i += 1;
        let mut seen = Seen::default();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let (s, e, escaped) = self.string()?;
            let key = self.key(s, e, escaped)?;
            let at = Path::Key(path, &key);
            if let Some(first) = seen.insert(key.clone(), s) {
                let (l1, c1) = self.position(first);
                let (l2, c2) = self.position(s);
                let mut p = problem(
                    at.spell(),
                    format!(
                        "key {key:?} appears twice in one object, at line {l1} column {c1} and at line {l2} column {c2}; JSON keys must be unique (otherwise the later value would silently replace the earlier)"
                    ),
                );
                p.location = Some((l2, c2));
                self.errs.push(p);
            }
            self.eat(b':')?;
            self.value(&at, depth + 1)?;
            if self.closed(b'}')? {
                return Some(());
            }
        }
    }

    fn array(&mut self, path: &Path<'_>, depth: usize) -> Option<()> {
        self.i += 1;
        if self.eat(b']').is_some() {
            return Some(());
        }
        let mut n = 0;
        loop {
            self.value(&Path::Index(path, n), depth + 1)?;
            if self.closed(b']')? {
                return Some(());
            }
            n += 1;
        }
    }

    /// After a member: `Some(false)` past a `,` (another member follows), `Some(true)`
    /// past `close` (the object/array ends), `None` on anything else.
    fn closed(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let c = *self.b.get(self.i)?;
        self.i += 1;
        match c {
            b',' => Some(false),
            c if c == close => Some(true),
            _ => None,
        }
    }

    /// 1-based line and column (in characters) of byte `at`.
    fn position(&self, at: usize) -> (usize, usize) {
        crate::error::line_col(self.text, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_at_any_depth() {
        let text = "{\"id\": \"a\",\n \"network\": {\"interfaces\": {\"wan\": {}, \"wan\": {\"ip4\": \"10.0.0.2\"}}},\n \"sysctl\": {\"net.ipv4.ip_forward\": 1, \"net.ipv4.ip_forward\": 0},\n \"id\": \"b\"}";
        let e = check(text);
        let got: Vec<_> = e
            .iter()
            .map(|e| (e.path.as_str(), e.location.unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("network.interfaces.wan", (2, 40)),
                ("sysctl[\"net.ipv4.ip_forward\"]", (3, 39)),
                ("id", (4, 2)),
            ]
        );
        assert!(
            e[0].message
                .contains("line 2 column 29 and at line 2 column 40"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn escaped_spellings_are_the_same_key() {
        let e = check(r#"{"a": 1, "\u0061": 2}"#);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "a");
    }

    #[test]
    fn distinct_keys_and_arrays_are_fine() {
        assert!(check(r#"{"a": [{"x": 1}, {"x": 2}], "b": {"x": "\"}"}}"#).is_empty());
        let e = check(r#"{"r": [{"to": 1}, {"to": 1, "to": 2}]}"#);
        assert_eq!(e[0].path, "r[1].to");
    }

    /// A JSON value whose objects may repeat keys (an index into [`KEYS`]).
    #[derive(Debug, Clone)]
    enum J {
        Num,
        Str,
        Arr(Vec<J>),
        Obj(Vec<(usize, J)>),
    }

    /// Keys as written in the text, and as they decode: `\u0061` is `a`.
    const KEYS: [(&str, &str); 5] = [
        ("a", "a"),
        ("b", "b"),
        ("net.x", "net.x"),
        ("\\u0061", "a"),
        ("x y", "x y"),
    ];

    fn arb() -> impl proptest::strategy::Strategy<Value = J> {
        use proptest::prelude::*;
        prop_oneof![Just(J::Num), Just(J::Str)].prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
                proptest::collection::vec((0..KEYS.len(), inner), 0..6).prop_map(J::Obj),
            ]
        })
    }

    /// Writes `j` into `out` with `ws` between tokens, and lists where each repeated key
    /// is (path, byte offset of its second occurrence) — the model of [`check`].
    fn render(j: &J, path: &str, ws: &str, out: &mut String, dups: &mut Vec<(String, usize)>) {
        match j {
            J::Num => out.push_str("12"),
            J::Str => out.push_str("\"s\\\"}\""),
            J::Arr(v) => {
                out.push('[');
                for (n, x) in v.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(ws);
                    render(x, &format!("{path}[{n}]"), ws, out, dups);
                }
                out.push(']');
            }
            J::Obj(m) => {
                out.push('{');
                let mut seen: Vec<&str> = Vec::new();
                for (n, (k, x)) in m.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(ws);
                    let (raw, key) = KEYS[*k];
                    let at = if path.is_empty() {
                        key_path("", key).trim_start_matches('.').to_owned()
                    } else {
                        key_path(path, key)
                    };
                    if seen.contains(&key) {
                        dups.push((at.clone(), out.len()));
                    }
                    seen.push(key);
                    out.push_str(&format!("\"{raw}\":{ws}"));
                    render(x, &at, ws, out, dups);
                }
                out.push_str(ws);
                out.push('}');
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn every_repeated_key_is_found_where_the_model_puts_it(
            j in arb(),
            ws in proptest::sample::select(vec!["", " ", "\n  "]),
        ) {
            let (mut text, mut dups) = (String::new(), Vec::new());
            render(&j, "", ws, &mut text, &mut dups);
            let want: Vec<_> = dups
                .iter()
                .map(|(p, at)| (p.clone(), crate::error::line_col(&text, *at)))
                .collect();
            let got: Vec<_> = check(&text)
                .into_iter()
                .map(|e| (e.path, e.location.unwrap()))
                .collect();
            proptest::prop_assert_eq!(got, want, "{}", text);
        }
    }

    #[test]
    fn a_map_of_many_keys_is_hashed_and_still_checked() {
        let mut text = String::from("{");
        for i in 0..1000 {
            text.push_str(&format!("\"k{i}\": {i}, "));
        }
        text.push_str("\"k7\": 0, \"k999\": 1}");
        let got: Vec<_> = check(&text).into_iter().map(|e| e.path).collect();
        assert_eq!(got, ["k7", "k999"]);
    }

    #[test]
    fn invalid_json_is_left_to_the_parser() {
        for bad in [
            "{\"a\": 1, \"a\": ",
            "{\"a\" 1}",
            "[1,",
            "",
            "{\"a\":1,\"a\":2",
            "\"x",
        ] {
            assert!(check(bad).is_empty(), "{bad:?}");
        }
        let deep = "[".repeat(10_000);
        assert!(check(&deep).is_empty());
    }
}
