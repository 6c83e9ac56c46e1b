//! JSON text → [`raw::Props`](super::raw::Props), with the JSON path and line:column of
//! the first syntax or type error (serde stops at the first one; value errors are all
//! collected later by `validate`).

use serde_json::error::Category;

use super::errors::problem;
use super::raw::Props;
use crate::error::Invalid;

/// Largest properties file accepted (the `nft` text alone may be 1 MiB).
pub const FILE_MAX: usize = 2 << 20;

pub fn parse(text: &str) -> Result<Props, Invalid> {
    if text.len() > FILE_MAX {
        return Err(problem(
            "",
            format!(
                "file is {} bytes, at most {FILE_MAX} are accepted",
                text.len()
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let props: Props = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // Segments serde could not name (inside a syntax error) print as "?".
        let path = e.path().to_string();
        let path = path
            .trim_end_matches(".?")
            .trim_end_matches(['?', '.'])
            .to_owned();
        from_serde(path, e.into_inner())
    })?;
    de.end().map_err(|e| from_serde(String::new(), e))?;
    Ok(props)
}

fn from_serde(path: String, e: serde_json::Error) -> Invalid {
    // serde_json appends " at line L column C"; the location is reported separately.
    let text = e.to_string();
    let text = text.rfind(" at line ").map_or(&*text, |i| &text[..i]);
    let message = match e.classify() {
        Category::Syntax | Category::Eof => format!("invalid JSON: {text}"),
        Category::Data | Category::Io => untagged_hint(&path, text),
    };
    let mut p = problem(path, message);
    p.location = (e.line() > 0).then_some((e.line(), e.column()));
    p
}

/// serde's message for an untagged enum says nothing useful; say what is expected.
fn untagged_hint(path: &str, text: &str) -> String {
    if !text.starts_with("data did not match any variant") {
        return text.to_owned();
    }
    if path == "sysctl" {
        "expected a string of key=value lines or an object of key to string/number/bool".into()
    } else if path.starts_with("sysctl") {
        "expected a string, number or boolean".into()
    } else if path.ends_with("vrid") {
        "expected a VRRP id 1–255, as a number or a decimal string".into()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_has_location() {
        let e = parse("{\n  \"id\": \"a\",\n  }").unwrap_err();
        assert_eq!(e.location, Some((3, 3)));
        assert!(e.message.starts_with("invalid JSON"), "{}", e.message);
    }

    #[test]
    fn unknown_field_has_path() {
        let e =
            parse(r#"{"id":"a","network":{"interfaces":{"lan":{"ovs":{"vlna":3}}}}}"#).unwrap_err();
        assert_eq!(e.path, "network.interfaces.lan.ovs.vlna");
        assert!(e.message.contains("unknown field `vlna`"), "{}", e.message);
    }

    #[test]
    fn type_error_and_trailing_text() {
        let e = parse(r#"{"id":"a","network":{"masquerade":"yes"}}"#).unwrap_err();
        assert_eq!(e.path, "network.masquerade");
        let e = parse(r#"{"id":"a"} x"#).unwrap_err();
        assert!(e.message.contains("trailing"), "{}", e.message);
        let e = parse(r#"{"id":"a","sysctl":[1]}"#).unwrap_err();
        assert!(e.message.contains("key=value"), "{}", e.message);
    }
}
