//! OVSDB transaction operations (RFC 7047 §5.2) and the data notation they carry.
//!
//! Only what netprov needs: insert with a named uuid, select, update, mutate, delete,
//! wait and comment, built as typed values and turned into JSON at the edge.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// `[column, function, value]`, e.g. `["name", "==", "br0"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond(pub Value);

impl Cond {
    pub fn eq(column: &str, value: impl Into<Value>) -> Self {
        Cond(json!([column, "==", value.into()]))
    }
    pub fn uuid(uuid: &str) -> Self {
        Cond(json!(["_uuid", "==", ["uuid", uuid]]))
    }
    /// Set or map column `column` contains `value` (a set or map datum).
    pub fn includes(column: &str, value: Value) -> Self {
        Cond(json!([column, "includes", value]))
    }
}

/// One operation of a `transact`.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Insert {
        table: &'static str,
        row: Value,
        uuid_name: Option<String>,
    },
    Select {
        table: &'static str,
        conds: Vec<Cond>,
        columns: Vec<&'static str>,
    },
    Update {
        table: &'static str,
        conds: Vec<Cond>,
        row: Value,
    },
    /// `mutations`: `[column, mutator, value]` triples.
    Mutate {
        table: &'static str,
        conds: Vec<Cond>,
        mutations: Vec<Value>,
    },
    Delete {
        table: &'static str,
        conds: Vec<Cond>,
    },
    /// Fails the transaction unless the selected rows' `columns` are (`until: "=="`)
    /// or are not (`"!="`) exactly `rows`; timeout 0 = check once, never block.
    Wait {
        table: &'static str,
        conds: Vec<Cond>,
        columns: Vec<&'static str>,
        until_equal: bool,
        rows: Vec<Value>,
    },
    Comment(String),
}

impl Op {
    /// Fails the transaction unless a row of `table` is named `name` (a bridge or a
    /// switch that must still exist).
    pub fn wait_named(table: &'static str, name: &str) -> Self {
        Self::wait_name(table, name, vec![json!({ "name": name })])
    }

    /// Fails the transaction if a row of `table` is named `name` (a name that must
    /// still be free: another writer may have taken it since it was observed).
    pub fn wait_unnamed(table: &'static str, name: &str) -> Self {
        Self::wait_name(table, name, vec![])
    }

    /// The `name` column of the rows of `table` named `name` must be exactly `rows`.
    fn wait_name(table: &'static str, name: &str, rows: Vec<Value>) -> Self {
        Op::Wait {
            table,
            conds: vec![Cond::eq("name", name)],
            columns: vec!["name"],
            until_equal: true,
            rows,
        }
    }

    /// Adds the row inserted as `named` (a uuid-name of the same transaction) to set
    /// column `column` of the `table` row named `name`.
    pub fn insert_ref(table: &'static str, name: &str, column: &str, named: &str) -> Self {
        Op::Mutate {
            table,
            conds: vec![Cond::eq("name", name)],
            mutations: vec![json!([column, "insert", ["set", [named_uuid(named)]]])],
        }
    }

    /// Removes row `row_uuid` from set column `column` of every `table` row holding it.
    pub fn remove_ref(table: &'static str, column: &str, row_uuid: &str) -> Self {
        Op::Mutate {
            table,
            conds: vec![Cond::includes(column, json!(["set", [uuid(row_uuid)]]))],
            mutations: vec![json!([column, "delete", ["set", [uuid(row_uuid)]]])],
        }
    }

    /// Whether the operation can change the database (counted for the "re-apply sends
    /// zero mutations" guarantee).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Op::Insert { .. } | Op::Update { .. } | Op::Mutate { .. } | Op::Delete { .. }
        )
    }

    pub fn to_json(&self) -> Value {
        let conds = |c: &[Cond]| Value::Array(c.iter().map(|c| c.0.clone()).collect());
        match self {
            Op::Insert {
                table,
                row,
                uuid_name,
            } => {
                let mut o = json!({"op": "insert", "table": table, "row": row});
                if let Some(n) = uuid_name {
                    o["uuid-name"] = json!(n);
                }
                o
            }
            Op::Select {
                table,
                conds: c,
                columns,
            } => {
                json!({"op": "select", "table": table, "where": conds(c), "columns": columns})
            }
            Op::Update {
                table,
                conds: c,
                row,
            } => {
                json!({"op": "update", "table": table, "where": conds(c), "row": row})
            }
            Op::Mutate {
                table,
                conds: c,
                mutations,
            } => {
                json!({"op": "mutate", "table": table, "where": conds(c), "mutations": mutations})
            }
            Op::Delete { table, conds: c } => {
                json!({"op": "delete", "table": table, "where": conds(c)})
            }
            Op::Wait {
                table,
                conds: c,
                columns,
                until_equal,
                rows,
            } => json!({
                "op": "wait", "table": table, "where": conds(c), "columns": columns,
                "until": if *until_equal { "==" } else { "!=" }, "rows": rows, "timeout": 0
            }),
            Op::Comment(text) => json!({"op": "comment", "comment": text}),
        }
    }
}

/// An `<error>` object from a transaction result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnError {
    /// Index of the failed operation; `None` for an error of the commit as a whole
    /// (the extra element after the per-operation results).
    pub op_index: Option<usize>,
    pub error: String,
    pub details: Option<String>,
}

impl TxnError {
    /// A `wait` that did not hold: someone changed what we looked at; re-read and retry.
    pub fn is_conflict(&self) -> bool {
        self.error == "timed out"
    }
}

impl std::fmt::Display for TxnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)?;
        if let Some(d) = &self.details {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// Checks a `transact` result array: every element for an `error` member, and a
/// trailing extra element (the commit's own error).
pub fn check_results(n_ops: usize, result: &Value) -> Result<Vec<Value>, TxnError> {
    let Some(items) = result.as_array() else {
        return Err(TxnError {
            op_index: None,
            error: "malformed transact result".into(),
            details: Some(result.to_string()),
        });
    };
    for (i, item) in items.iter().enumerate() {
        if let Some(err) = item.get("error").filter(|e| !e.is_null()) {
            return Err(TxnError {
                op_index: (i < n_ops).then_some(i),
                error: err
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| err.to_string()),
                details: item
                    .get("details")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
    }
    if items.len() < n_ops {
        return Err(TxnError {
            op_index: None,
            error: "malformed transact result".into(),
            details: Some(format!("{} results for {n_ops} operations", items.len())),
        });
    }
    Ok(items[..n_ops].to_vec())
}

/// The rows of a `select` result.
pub fn rows(result: &Value) -> Vec<Value> {
    result["rows"].as_array().cloned().unwrap_or_default()
}

// ---- data notation (RFC 7047 §5.1) ----

/// `["set", [..]]` of integers.
pub fn int_set(values: impl IntoIterator<Item = i64>) -> Value {
    json!(["set", values.into_iter().collect::<Vec<_>>()])
}

/// An optional scalar: an empty set or the value.
pub fn optional(value: Option<Value>) -> Value {
    value.unwrap_or_else(|| json!(["set", []]))
}

pub fn string_map(map: &BTreeMap<String, String>) -> Value {
    json!([
        "map",
        map.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()
    ])
}

pub fn uuid(u: &str) -> Value {
    json!(["uuid", u])
}

pub fn named_uuid(n: &str) -> Value {
    json!(["named-uuid", n])
}

/// The members of a set datum (a bare atom is a one-element set).
pub fn set_members(v: &Value) -> Vec<Value> {
    match v.as_array() {
        Some(a) if a.len() == 2 && a[0] == "set" => a[1].as_array().cloned().unwrap_or_default(),
        _ => vec![v.clone()],
    }
}

/// An optional column's value (`["set", []]` → None).
pub fn optional_member(v: &Value) -> Option<Value> {
    set_members(v).into_iter().next()
}

pub fn parse_string_map(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(pairs) = v
        .as_array()
        .filter(|a| a.len() == 2 && a[0] == "map")
        .and_then(|a| a[1].as_array())
    {
        for p in pairs {
            if let (Some(k), Some(v)) = (p[0].as_str(), p[1].as_str()) {
                out.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    out
}

/// The uuid string of a `["uuid", ..]` atom.
pub fn parse_uuid(v: &Value) -> Option<String> {
    v.as_array()
        .filter(|a| a.len() == 2 && a[0] == "uuid")
        .and_then(|a| a[1].as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_with_op_error_name_the_op() {
        let r = json!([{"uuid": ["uuid", "x"]}, {"error": "constraint violation", "details": "tag 5000"}, null]);
        let e = check_results(3, &r).unwrap_err();
        assert_eq!(e.op_index, Some(1));
        assert_eq!(e.to_string(), "constraint violation: tag 5000");
    }

    #[test]
    fn trailing_commit_error_is_caught() {
        let r = json!([{}, {}, {"error": "referential integrity violation", "details": "d"}]);
        let e = check_results(2, &r).unwrap_err();
        assert_eq!(e.op_index, None);
        assert!(!e.is_conflict());
        let r = json!([{"error": "timed out"}]);
        assert!(check_results(1, &r).unwrap_err().is_conflict());
        assert_eq!(check_results(1, &json!([{"count": 1}])).unwrap().len(), 1);
    }

    #[test]
    fn data_notation_round_trips() {
        let mut m = BTreeMap::new();
        m.insert("netprov-id".to_owned(), "web".to_owned());
        assert_eq!(parse_string_map(&string_map(&m)), m);
        assert_eq!(set_members(&json!(5)), vec![json!(5)]);
        assert_eq!(set_members(&int_set([1, 2])), vec![json!(1), json!(2)]);
        assert_eq!(optional_member(&json!(["set", []])), None);
        assert_eq!(parse_uuid(&uuid("ab")), Some("ab".into()));
        let w = Op::Wait {
            table: "Port",
            conds: vec![Cond::eq("name", "p")],
            columns: vec!["name"],
            until_equal: true,
            rows: vec![],
        };
        assert_eq!(w.to_json()["until"], "==");
        assert!(!w.is_mutating());
    }

    /// The helpers build what RFC 7047 §5.2 says, as netprov sent it by hand before.
    #[test]
    fn named_waits_and_references() {
        assert_eq!(
            Op::wait_named("Bridge", "br0").to_json(),
            json!({"op": "wait", "table": "Bridge", "where": [["name", "==", "br0"]],
                   "columns": ["name"], "until": "==", "rows": [{"name": "br0"}], "timeout": 0})
        );
        assert_eq!(
            Op::wait_unnamed("Port", "lan").to_json(),
            json!({"op": "wait", "table": "Port", "where": [["name", "==", "lan"]],
                   "columns": ["name"], "until": "==", "rows": [], "timeout": 0})
        );
        assert_eq!(
            Op::insert_ref("Bridge", "br0", "ports", "port0").to_json(),
            json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", "br0"]],
                   "mutations": [["ports", "insert", ["set", [["named-uuid", "port0"]]]]]})
        );
        let r = Op::remove_ref("Logical_Switch", "ports", "u1");
        assert!(r.is_mutating());
        assert_eq!(
            r.to_json(),
            json!({"op": "mutate", "table": "Logical_Switch",
                   "where": [["ports", "includes", ["set", [["uuid", "u1"]]]]],
                   "mutations": [["ports", "delete", ["set", [["uuid", "u1"]]]]]})
        );
    }
}
