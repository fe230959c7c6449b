//! The API's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes and
//! the `hoody_api` types they answer with. Served at `GET /api/v1/openapi.json`, printed by
//! `hoodyd --openapi`, committed as `docs/openapi.json` (a test fails when they differ).
//! Deterministic: nothing of the host, the build or the socket is in it.

use utoipa::OpenApi;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{Content, RefOr};

use super::{audit, containers, events, exec, firewall, images, logs, metrics, operations, realms, snapshots, system};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hoody",
        description = "The API of hoodyd over its Unix socket. Every JSON answer is `{\"data\": …}` (2xx) or `{\"error\": {\"code\", \"message\", \"details\"}}` (4xx, 5xx); administrators are identified by their peer credentials, tenants by `Authorization: Bearer TOKEN`. docs/API.md says more."
    ),
    paths(
        system::health, metrics::metrics, system::openapi, system::shutdown, events::events,
        operations::list, operations::get, operations::cancel,
        containers::create, containers::list, containers::get, containers::update, containers::delete,
        containers::start, containers::stop, containers::restart, logs::logs,
        snapshots::create, snapshots::list, snapshots::delete, snapshots::restore, snapshots::diff,
        exec::exec, exec::attach, exec::list, exec::get,
        firewall::show, firewall::patch, firewall::reset, firewall::events,
        firewall::add_egress, firewall::delete_egress, firewall::add_ingress, firewall::delete_ingress,
        realms::create, realms::list, realms::create_token, realms::list_tokens, realms::delete_token,
        audit::list, audit::verify,
        images::import, images::list, images::get, images::delete,
    ),
    components(schemas(hoody_api::envelope::ErrorEnvelope, hoody_api::envelope::ErrorCode)),
    modifiers(&ErrorAnswers),
    tags(
        (name = "system", description = "Liveness, metrics, host shutdown"),
        (name = "containers", description = "Lifecycle, limits, console log"),
        (name = "snapshots", description = "Snapshots, restore and diff"),
        (name = "exec", description = "Commands in a container: streams, JSON mode, instances"),
        (name = "firewall", description = "Egress and ingress rules, policy, DNS, events"),
        (name = "images", description = "Root file system images"),
        (name = "realms", description = "Realms and tokens (administrators)"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "operations", description = "Long work begun with ?async=true: status, progress, result, cancel"),
        (name = "events", description = "The event stream: what changed, as it happens, resumable"),
    )
)]
struct Doc;

/// Every operation can fail: 4XX and 5XX answers carry the error envelope.
struct ErrorAnswers;

impl utoipa::Modify for ErrorAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let answer = |what: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(what)
                    .content("application/json", Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorEnvelope")))))
                    .build(),
            )
        };
        for item in doc.paths.paths.values_mut() {
            let ops =
                [(&mut item.get, false), (&mut item.post, true), (&mut item.patch, true), (&mut item.delete, true), (&mut item.put, true)];
            for (op, mutating) in ops.into_iter().filter_map(|(op, m)| Some((op.as_mut()?, m))) {
                op.responses.responses.insert("4XX".into(), answer("Refused: the error envelope; `code` says why"));
                op.responses.responses.insert("5XX".into(), answer("The host failed: the error envelope with the cause chain"));
                conventions(op, mutating);
            }
        }
    }
}

/// A string header or parameter schema.
fn text() -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::T(utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).into())
}

/// The headers every operation takes and answers with (docs/API.md, *Conventions*): the
/// request id both ways, the idempotency key on what changes something, the next page's
/// cursor on lists.
fn conventions(op: &mut utoipa::openapi::path::Operation, mutating: bool) {
    use utoipa::openapi::Required;
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    let param = |name: &str, what: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(what))
            .schema(Some(text()))
            .build()
    };
    let params = op.parameters.get_or_insert_with(Vec::new);
    let lists = params.iter().any(|p| matches!(p, RefOr::T(p) if p.name == "after"));
    params.push(RefOr::T(param(
        "X-Request-Id",
        "Ties the answer to its audit record (1–128 visible ASCII characters); the daemon gives one when absent or unfit.",
    )));
    if mutating {
        params.push(RefOr::T(param(
            "Idempotency-Key",
            "Answer this request once: a retry with the same key and request gets the first answer (24 hours), with another request 422, while the first runs 409 in_progress.",
        )));
    }
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(r) = response else { continue };
        let header = |what: &str| RefOr::T(HeaderBuilder::new().schema(Some(text())).description(Some(what)).build());
        r.headers.insert("X-Request-Id".into(), header("The request's id, as in its audit record."));
        if mutating && status.starts_with('2') {
            r.headers.insert(
                "Idempotent-Replayed".into(),
                header("`true` when this is the kept first answer to a retry with the same Idempotency-Key."),
            );
        }
        if lists && status == "200" {
            r.headers.insert("X-Next-Cursor".into(), header("Present when more items follow: the next page's `after`."));
        }
    }
}

/// The document as JSON, pretty-printed with a final newline (as committed).
pub fn json() -> String {
    let mut s = Doc::openapi().to_pretty_json().expect("the document serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const COMMITTED: &str = include_str!("../../../docs/openapi.json");

    #[test]
    fn the_committed_document_is_the_generated_one() {
        if std::env::var_os("HOODY_WRITE_OPENAPI").is_some() {
            std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"), json()).unwrap();
            return;
        }
        assert!(
            COMMITTED == json(),
            "docs/openapi.json differs from the document the code generates: regenerate it with \
             `HOODY_WRITE_OPENAPI=1 cargo test -p hoodyd --lib openapi` and commit it"
        );
    }

    #[test]
    fn it_is_openapi_3_1_and_names_path_parameters_as_the_design_does() {
        let doc: serde_json::Value = serde_json::from_str(&json()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
        let mut names = BTreeSet::new();
        for path in doc["paths"].as_object().unwrap().keys() {
            assert!(path.starts_with("/api/v1/"), "{path}");
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                names.insert(seg.to_owned());
            }
        }
        let allowed: BTreeSet<String> = ["{id}", "{name}", "{rule_id}", "{exec_id}", "{operation_id}"].map(String::from).into();
        assert_eq!(names, allowed);
        let text = json();
        for host_fact in ["/run/hoody", "/var/lib/hoody", env!("CARGO_MANIFEST_DIR"), ".sock"] {
            assert!(!text.contains(host_fact), "the document names {host_fact}");
        }
    }
}
