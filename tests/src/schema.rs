//! Every JSON answer a test's daemon gave, checked against docs/openapi.json: the daemon (built
//! with `test-hooks`) appends each one to `HOODY_ANSWER_LOG` with the route it matched, and a
//! world checks its log when it is dropped. The document is made strict for this (no property
//! it does not name may appear), so an answer and its schema cannot drift apart silently.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use serde_json::{Value, json};

const DOC: &str = include_str!("../../docs/openapi.json");

/// The document with `unevaluatedProperties: false` on every object schema, however deep
/// (generic answers such as `Data_Container` inline their part), except where it is a part of an
/// `allOf` (there it would refuse the other parts' properties; the whole is strict instead).
fn strict_doc() -> &'static Value {
    static STRICT: OnceLock<Value> = OnceLock::new();
    STRICT.get_or_init(|| {
        let mut doc: Value = serde_json::from_str(DOC).expect("docs/openapi.json is JSON");
        let mut parts = BTreeSet::new();
        collect_all_of_refs(&doc, &mut parts);
        for (name, schema) in doc["components"]["schemas"].as_object_mut().expect("components.schemas") {
            strictify(schema, parts.contains(name));
        }
        doc
    })
}

fn collect_all_of_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(items)) = m.get("allOf") {
                for r in items.iter().filter_map(|i| i.get("$ref")).filter_map(Value::as_str) {
                    out.insert(r.trim_start_matches("#/components/schemas/").to_owned());
                }
            }
            m.values().for_each(|x| collect_all_of_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_all_of_refs(x, out)),
        _ => {}
    }
}

fn strictify(v: &mut Value, part_of_all_of: bool) {
    let Value::Object(m) = v else { return };
    if !part_of_all_of && (m.contains_key("properties") || m.contains_key("allOf")) {
        m.insert("unevaluatedProperties".into(), json!(false));
    }
    for (k, x) in m.iter_mut() {
        match (k.as_str(), x) {
            ("allOf", Value::Array(items)) => items.iter_mut().for_each(|i| strictify(i, true)),
            (_, Value::Array(items)) => items.iter_mut().for_each(|i| strictify(i, false)),
            (_, x) => strictify(x, false),
        }
    }
}

/// The schema of an answer: `(route, method, status)` → the response's JSON schema, resolved
/// against the whole document (`#/components/schemas/…`).
fn validator(route: Option<&str>, method: &str, status: u16) -> Result<Arc<Validator>, String> {
    type Cache = Mutex<HashMap<(Option<String>, String, u16), Arc<Validator>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (route.map(str::to_owned), method.to_owned(), status);
    if let Some(v) = CACHE.get_or_init(Default::default).lock().unwrap().get(&key) {
        return Ok(v.clone());
    }
    let doc = strict_doc();
    let answer = match route {
        // The fallback (no such endpoint, method not allowed): the error envelope.
        None if status >= 400 => json!({"$ref": "#/components/schemas/ErrorEnvelope"}),
        None => return Err(format!("a {status} answer to {method} matched no route")),
        Some(r) => {
            // HEAD is answered as GET is (without the body on the wire).
            let documented = if method == "HEAD" { "get".to_owned() } else { method.to_ascii_lowercase() };
            let op = doc["paths"].get(r).and_then(|p| p.get(documented));
            let op = match op {
                // A method the route does not have (the router's 405, or the gate's refusal
                // before it): the error envelope.
                None if status >= 400 => return validator(None, method, status),
                None => return Err(format!("{method} {r} is not in the document")),
                Some(op) => op,
            };
            let responses = &op["responses"];
            let class = format!("{}XX", status / 100);
            let resp = responses
                .get(status.to_string())
                .or_else(|| responses.get(&class))
                .or_else(|| responses.get("default"))
                .ok_or(format!("{method} {r}: the document has no {status} answer"))?;
            resp.pointer("/content/application~1json/schema")
                .or_else(|| resp.pointer("/content/application~1x-ndjson/schema"))
                .cloned()
                .ok_or(format!("{method} {r}: the document's {status} answer has no JSON body, the daemon sent one"))?
        }
    };
    let mut root = doc.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["$defs"] = json!({ "answer": answer });
    root["$ref"] = json!("#/$defs/answer");
    let v = Arc::new(jsonschema::draft202012::new(&root).map_err(|e| format!("the document does not compile: {e}"))?);
    CACHE.get_or_init(Default::default).lock().unwrap().insert(key, v.clone());
    Ok(v)
}

/// Checks one answer; the violations, each naming where.
pub fn check(route: Option<&str>, method: &str, status: u16, body: &Value) -> Vec<String> {
    let v = match validator(route, method, status) {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    v.iter_errors(body).map(|e| format!("{method} {} → {status}: {e} at {}", route.unwrap_or("(no route)"), e.instance_path())).collect()
}

/// Checks every line of an answer log; the violations (empty when all conform).
pub fn check_log(text: &str) -> Vec<String> {
    let mut bad = vec![];
    for line in text.lines() {
        let a: Value = match serde_json::from_str(line) {
            Ok(a) => a,
            Err(e) => {
                bad.push(format!("an answer log line is not JSON ({e}): {line}"));
                continue;
            }
        };
        let status = a["status"].as_u64().unwrap_or(0) as u16;
        for v in check(a["route"].as_str(), a["method"].as_str().unwrap_or(""), status, &a["body"]) {
            bad.push(format!("{v}\n    answer: {}", a["body"].to_string().chars().take(600).collect::<String>()));
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conforming_answer_passes_and_a_drifted_one_is_named() {
        let ok = json!({"data": {"id": "x", "deleted": true}});
        assert!(check(Some("/api/v1/tokens/{id}"), "DELETE", 200, &ok).is_empty());
        let extra = json!({"data": {"id": "x", "deleted": true, "colour": "red"}});
        assert!(!check(Some("/api/v1/tokens/{id}"), "DELETE", 200, &extra).is_empty(), "an undocumented field is refused");
        let wrong = json!({"data": {"id": 7, "deleted": true}});
        assert!(!check(Some("/api/v1/tokens/{id}"), "DELETE", 200, &wrong).is_empty(), "a wrong type is refused");
        let err = json!({"error": {"code": "not_found", "message": "m", "details": []}});
        assert!(check(Some("/api/v1/tokens/{id}"), "DELETE", 404, &err).is_empty());
        assert!(!check(Some("/api/v1/tokens/{id}"), "DELETE", 404, &json!({"error": {"code": "nope", "message": "m"}})).is_empty());
        assert!(!check(Some("/api/v1/nowhere"), "GET", 200, &ok).is_empty(), "a route the document lacks is named");
        assert!(check(None, "GET", 404, &err).is_empty());
    }

    #[test]
    fn schemas_built_from_all_of_stay_strict_through_their_parts() {
        let run = json!({"data": {"id": "e", "exit_code": 0, "signal": null, "stdout": "hi\n", "stderr": "",
            "truncated": {"stdout": false, "stderr": false}, "timed_out": false, "duration_ms": 3}});
        assert_eq!(check(Some("/api/v1/containers/{id}/exec"), "POST", 200, &run), Vec::<String>::new());
        let mut extra = run.clone();
        extra["data"]["bogus"] = json!(1);
        assert!(!check(Some("/api/v1/containers/{id}/exec"), "POST", 200, &extra).is_empty());
    }
}
