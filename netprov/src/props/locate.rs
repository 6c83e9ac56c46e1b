//! Finds the line:column of a JSON path (as `validate` writes them) in the file text,
//! so value errors point into the file like serde's type errors do.
//!
//! Runs only on text that already parsed, so the scanner can assume valid JSON.

enum Seg {
    Key(String),
    Index(usize),
}

/// 1-based line and column of the value at `path`, or of its deepest existing parent.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut at = ws(b, 0);
    for seg in segments(path)? {
        match member(text, at, &seg) {
            Some(next) => at = next,
            None => break,
        }
    }
    Some(crate::error::line_col(text, at))
}

fn segments(path: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        rest = rest.strip_prefix('.').unwrap_or(rest);
        if let Some(r) = rest.strip_prefix("[\"") {
            // A quoted key: a JSON string up to the first unescaped quote.
            let end = r.char_indices().scan(false, |esc, (i, c)| {
                let hit = c == '"' && !*esc;
                *esc = c == '\\' && !*esc;
                Some((i, hit))
            });
            let end = end.filter(|(_, hit)| *hit).map(|(i, _)| i).next()?;
            out.push(Seg::Key(
                serde_json::from_str(&format!("\"{}\"", &r[..end])).ok()?,
            ));
            rest = r[end + 1..].strip_prefix(']')?;
        } else if let Some(r) = rest.strip_prefix('[') {
            let (n, r) = r.split_once(']')?;
            out.push(Seg::Index(n.parse().ok()?));
            rest = r;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Seg::Key(rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    Some(out)
}

/// Start of the member `seg` of the object/array starting at `at`.
fn member(text: &str, at: usize, seg: &Seg) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = ws(b, at + 1);
    let mut n = 0;
    match (b.get(at)?, seg) {
        (b'{', Seg::Key(k)) => loop {
            if b.get(i)? != &b'"' {
                return None;
            }
            let end = skip(b, i);
            let key: String = serde_json::from_str(&text[i..end]).ok()?;
            i = ws(b, ws(b, end) + 1); // past ':'
            if key == *k {
                return Some(i);
            }
            i = next(b, i)?;
        },
        (b'[', Seg::Index(want)) => loop {
            if matches!(b.get(i)?, b']') {
                return None;
            }
            if n == *want {
                return Some(i);
            }
            i = next(b, i)?;
            n += 1;
        },
        _ => None,
    }
}

/// Start of the member after the one starting at `i`; `None` at the end of its
/// object/array.
fn next(b: &[u8], i: usize) -> Option<usize> {
    let i = ws(b, skip(b, i));
    if b.get(i)? != &b',' {
        return None;
    }
    Some(ws(b, i + 1))
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// End (exclusive) of the value starting at `i`.
fn skip(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    while let Some(&c) = b.get(i) {
        i += 1;
        if in_str {
            match c {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => {
                    in_str = false;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return i - 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            b',' if depth == 0 => return i - 1,
            c if c.is_ascii_whitespace() && depth == 0 => return i - 1,
            _ => {}
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "{\n  \"id\": \"a\",\n  \"network\": {\n    \"interfaces\": { \"eth0.1\": { \"ip4\": \"x\" },\n      \"lan\": {\"ovs\": {\"bridge\": \"b\", \"vlan\": 4356}} },\n    \"routes\": [ {\"to\": \"1\"}, {\"to\": \"2\", \"via\": \"q\"} ]\n  },\n  \"sysctl\": {\"net.ipv4.x\": [1, {\"a\": \"}\\\"\"}]}\n}";

    #[test]
    fn finds_values_by_path() {
        assert_eq!(locate(TEXT, "id"), Some((2, 9)));
        assert_eq!(
            locate(TEXT, "network.interfaces.lan.ovs.vlan"),
            Some((5, 46))
        );
        assert_eq!(
            locate(TEXT, "network.interfaces[\"eth0.1\"].ip4"),
            Some((4, 40))
        );
        assert_eq!(locate(TEXT, "network.routes[1].via"), Some((6, 49)));
        assert_eq!(locate(TEXT, "sysctl[\"net.ipv4.x\"]"), Some((8, 28)));
    }

    #[test]
    fn missing_members_point_at_the_parent() {
        assert_eq!(locate(TEXT, "network.routes[7]"), Some((6, 15)));
        assert_eq!(locate(TEXT, "nope"), Some((1, 1)));
        assert_eq!(locate(TEXT, ""), Some((1, 1)));
    }
}
