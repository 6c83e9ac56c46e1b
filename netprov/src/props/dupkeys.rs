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

use std::collections::HashMap;

use super::errors::{key_path, problem};
use crate::error::Invalid;

/// Nesting deeper than this is not scanned (serde_json refuses it anyway, at 128).
const DEPTH_MAX: usize = 128;

/// Every repeated key of every object in `text`, located at its second occurrence.
pub fn check(text: &str) -> Vec<Invalid> {
    let mut s = Scan {
        b: text.as_bytes(),
        text,
        i: 0,
        errs: Vec::new(),
    };
    s.ws();
    match s.value("", 0) {
        Some(()) => s.errs,
        None => Vec::new(),
    }
}

struct Scan<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
    errs: Vec<Invalid>,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn value(&mut self, path: &str, depth: usize) -> Option<()> {
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

    /// A string starting at `self.i`; returns its byte range (quotes included).
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        self.i += 1;
        loop {
            match *self.b.get(self.i)? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some((start, self.i));
                }
                _ => self.i += 1,
            }
        }
    }

    fn object(&mut self, path: &str, depth: usize) -> Option<()> {
        self.i += 1;
        let mut seen: HashMap<String, usize> = HashMap::new();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let (s, e) = self.string()?;
            let key: String = serde_json::from_str(&self.text[s..e]).ok()?;
            let at = if path.is_empty() {
                key_path("", &key).trim_start_matches('.').to_owned()
            } else {
                key_path(path, &key)
            };
            if let Some(first) = seen.insert(key.clone(), s) {
                let (l1, c1) = self.position(first);
                let (l2, c2) = self.position(s);
                let mut p = problem(
                    at.clone(),
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

    fn array(&mut self, path: &str, depth: usize) -> Option<()> {
        self.i += 1;
        if self.eat(b']').is_some() {
            return Some(());
        }
        let mut n = 0;
        loop {
            self.value(&format!("{path}[{n}]"), depth + 1)?;
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
