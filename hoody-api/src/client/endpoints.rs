//! One typed method per endpoint: the answer's `data`, or [`ClientError::Api`] with the
//! daemon's error code. Ids and names are percent-encoded into the path; query strings are the
//! [`crate::query`] types.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, header};
use serde::Serialize;

use super::{Answer, Client, ClientError, Page, ReqBody, enc};
use crate::audit::record::Record;
use crate::audit::verify::Report;
use crate::common::Deleted;
use crate::containers::{Container, CreateContainer, Restored, UpdateContainer};
use crate::exec::{ExecDetail, ExecRequest, ExecResult, ExecView};
use crate::firewall::{EgressRule, Firewall, FirewallEvent, FirewallPatch, IngressRule, Rule};
use crate::images::{Image, ImportPath, Imported, SnapshotRef};
use crate::operations::{Accepted, Operation};
use crate::query::{
    AuditQuery, ContainersQuery, DiffQuery, EventsQuery, FirewallEventsQuery, Lifecycle, LogsQuery, PageQuery, TokensQuery,
};
use crate::realms::{CreateRealm, CreateToken, IssuedToken, Realm, Realms, Token};
use crate::snapshots::{CreateSnapshot, Diff, Snapshot};
use crate::system::{Health, ShutdownReport};

/// `path?query` (no `?` when the query is empty).
fn with_query(path: String, q: &impl Serialize) -> Result<String, ClientError> {
    let qs = serde_urlencoded::to_string(q)?;
    Ok(if qs.is_empty() { path } else { format!("{path}?{qs}") })
}

fn container(id: &str) -> String {
    format!("/containers/{}", enc(id))
}

const NONE: Option<&()> = None;

impl Client {
    /// `GET /health`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.typed(Method::GET, "/health", NONE).await
    }

    /// `GET /openapi.json`: the API's OpenAPI document.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        let a = self.call(Method::GET, "/openapi.json", None).await?;
        if !a.status.is_success() {
            return Err(a.data::<serde_json::Value>().expect_err("a failed status"));
        }
        Ok(a.json()?)
    }

    /// `POST /system/shutdown[?timeout=S]`: every container stopped, then the daemon exits.
    pub async fn shutdown(&self, timeout: Option<u64>) -> Result<ShutdownReport, ClientError> {
        let q = Lifecycle { timeout, ..Default::default() };
        self.typed(Method::POST, &with_query("/system/shutdown".into(), &q)?, NONE).await
    }

    /// `POST /containers[?start=true]`.
    pub async fn create_container(&self, req: &CreateContainer, start: bool) -> Result<Container, ClientError> {
        let q = Lifecycle { start, ..Default::default() };
        self.typed(Method::POST, &with_query("/containers".into(), &q)?, Some(req)).await
    }

    /// `GET /containers`.
    pub async fn containers(&self) -> Result<Vec<Container>, ClientError> {
        self.typed(Method::GET, "/containers", NONE).await
    }

    /// `GET /containers?status=&realm=&image=&limit=&after=`: one page, oldest first.
    pub async fn containers_page(&self, q: &ContainersQuery) -> Result<Page<Container>, ClientError> {
        self.page(&with_query("/containers".into(), q)?).await
    }

    /// `GET /containers/{id}` (with its usage).
    pub async fn container(&self, id: &str) -> Result<Container, ClientError> {
        self.typed(Method::GET, &container(id), NONE).await
    }

    /// `PATCH /containers/{id}`.
    pub async fn update_container(&self, id: &str, req: &UpdateContainer) -> Result<Container, ClientError> {
        self.typed(Method::PATCH, &container(id), Some(req)).await
    }

    /// `DELETE /containers/{id}[?force=true]`.
    pub async fn delete_container(&self, id: &str, force: bool) -> Result<Deleted, ClientError> {
        let q = Lifecycle { force, ..Default::default() };
        self.typed(Method::DELETE, &with_query(container(id), &q)?, NONE).await
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(&self, id: &str) -> Result<Container, ClientError> {
        self.typed(Method::POST, &format!("{}/start", container(id)), NONE).await
    }

    /// `POST /containers/{id}/stop[?timeout=S]`.
    pub async fn stop(&self, id: &str, timeout: Option<u64>) -> Result<Container, ClientError> {
        let q = Lifecycle { timeout, ..Default::default() };
        self.typed(Method::POST, &with_query(format!("{}/stop", container(id)), &q)?, NONE).await
    }

    /// `POST /containers/{id}/restart[?timeout=S]`.
    pub async fn restart(&self, id: &str, timeout: Option<u64>) -> Result<Container, ClientError> {
        let q = Lifecycle { timeout, ..Default::default() };
        self.typed(Method::POST, &with_query(format!("{}/restart", container(id)), &q)?, NONE).await
    }

    /// `GET /containers/{id}/logs`: the console output as a byte stream (with `follow`, until
    /// the container stops).
    pub async fn logs(&self, id: &str, q: &LogsQuery) -> Result<Incoming, ClientError> {
        self.stream(&with_query(format!("{}/logs", container(id)), q)?).await
    }

    /// `GET /events`: the event stream, open until the daemon ends it.
    pub async fn events(&self, q: &EventsQuery) -> Result<super::EventStream, ClientError> {
        let resp = self.stream_response(&with_query("/events".into(), q)?).await?;
        let after = resp.headers().get(crate::paths::EVENTS_AFTER_HEADER).and_then(|v| v.to_str().ok()?.parse().ok());
        Ok(super::EventStream::new(resp.into_body(), after))
    }

    /// `POST /containers/{id}/snapshots`.
    pub async fn create_snapshot(&self, id: &str, alias: &str) -> Result<Snapshot, ClientError> {
        let body = CreateSnapshot { alias: alias.to_owned() };
        self.typed(Method::POST, &format!("{}/snapshots", container(id)), Some(&body)).await
    }

    /// `GET /containers/{id}/snapshots`.
    pub async fn snapshots(&self, id: &str) -> Result<Vec<Snapshot>, ClientError> {
        self.typed(Method::GET, &format!("{}/snapshots", container(id)), NONE).await
    }

    /// `GET /containers/{id}/snapshots?limit=&after=`: one page, oldest first.
    pub async fn snapshots_page(&self, id: &str, q: &PageQuery) -> Result<Page<Snapshot>, ClientError> {
        self.page(&with_query(format!("{}/snapshots", container(id)), q)?).await
    }

    /// `DELETE /containers/{id}/snapshots/{name}`.
    pub async fn delete_snapshot(&self, id: &str, name: &str) -> Result<Deleted, ClientError> {
        self.typed(Method::DELETE, &format!("{}/snapshots/{}", container(id), enc(name)), NONE).await
    }

    /// `PATCH /containers/{id}/snapshots/{name}`: restore.
    pub async fn restore_snapshot(&self, id: &str, name: &str) -> Result<Restored, ClientError> {
        self.typed(Method::PATCH, &format!("{}/snapshots/{}", container(id), enc(name)), NONE).await
    }

    /// `GET /containers/{id}/snapshots/{name}/diff[?to=OTHER]`.
    pub async fn diff(&self, id: &str, name: &str, to: Option<&str>) -> Result<Diff, ClientError> {
        let q = DiffQuery { to: to.map(str::to_owned) };
        self.typed(Method::GET, &with_query(format!("{}/snapshots/{}/diff", container(id), enc(name)), &q)?, NONE).await
    }

    /// `POST /containers/{id}/exec` without an upgrade: the JSON mode's whole run.
    pub async fn exec_json(&self, id: &str, req: &ExecRequest) -> Result<ExecResult, ClientError> {
        self.typed(Method::POST, &format!("{}/exec", container(id)), Some(req)).await
    }

    /// `POST /containers/{id}/exec` with `detach: true`: the instance, running on.
    pub async fn exec_detached(&self, id: &str, req: &ExecRequest) -> Result<ExecView, ClientError> {
        let req = ExecRequest { detach: true, ..req.clone() };
        self.typed(Method::POST, &format!("{}/exec", container(id)), Some(&req)).await
    }

    /// `GET /containers/{id}/execs`: the container's exec instances, newest first.
    pub async fn execs(&self, id: &str) -> Result<Vec<ExecView>, ClientError> {
        self.typed(Method::GET, &format!("{}/execs", container(id)), NONE).await
    }

    /// `GET /containers/{id}/execs/{exec_id}` (a detached one with its output so far).
    pub async fn exec_instance(&self, id: &str, exec_id: &str) -> Result<ExecDetail, ClientError> {
        self.typed(Method::GET, &format!("{}/execs/{}", container(id), enc(exec_id)), NONE).await
    }

    /// `GET /containers/{id}/firewall`.
    pub async fn firewall(&self, id: &str) -> Result<Firewall, ClientError> {
        self.typed(Method::GET, &format!("{}/firewall", container(id)), NONE).await
    }

    /// `PATCH /containers/{id}/firewall`: policy and DNS mode.
    pub async fn patch_firewall(&self, id: &str, req: &FirewallPatch) -> Result<Firewall, ClientError> {
        self.typed(Method::PATCH, &format!("{}/firewall", container(id)), Some(req)).await
    }

    /// `POST /containers/{id}/firewall/reset`.
    pub async fn reset_firewall(&self, id: &str) -> Result<Firewall, ClientError> {
        self.typed(Method::POST, &format!("{}/firewall/reset", container(id)), NONE).await
    }

    /// `GET /containers/{id}/firewall/events[?kind=K]`, most recent first.
    pub async fn firewall_events(&self, id: &str, kind: Option<&str>) -> Result<Vec<FirewallEvent>, ClientError> {
        let q = FirewallEventsQuery { kind: kind.map(str::to_owned) };
        self.typed(Method::GET, &with_query(format!("{}/firewall/events", container(id)), &q)?, NONE).await
    }

    /// `POST /containers/{id}/firewall/egress`.
    pub async fn add_egress(&self, id: &str, rule: &EgressRule) -> Result<Rule, ClientError> {
        self.typed(Method::POST, &format!("{}/firewall/egress", container(id)), Some(rule)).await
    }

    /// `DELETE /containers/{id}/firewall/egress/{rule_id}`.
    pub async fn delete_egress(&self, id: &str, rule_id: &str) -> Result<Deleted, ClientError> {
        self.typed(Method::DELETE, &format!("{}/firewall/egress/{}", container(id), enc(rule_id)), NONE).await
    }

    /// `POST /containers/{id}/firewall/ingress`.
    pub async fn add_ingress(&self, id: &str, rule: &IngressRule) -> Result<Rule, ClientError> {
        self.typed(Method::POST, &format!("{}/firewall/ingress", container(id)), Some(rule)).await
    }

    /// `DELETE /containers/{id}/firewall/ingress/{rule_id}`.
    pub async fn delete_ingress(&self, id: &str, rule_id: &str) -> Result<Deleted, ClientError> {
        self.typed(Method::DELETE, &format!("{}/firewall/ingress/{}", container(id), enc(rule_id)), NONE).await
    }

    /// `POST /realms`.
    pub async fn create_realm(&self, req: &CreateRealm) -> Result<Realm, ClientError> {
        self.typed(Method::POST, "/realms", Some(req)).await
    }

    /// `GET /realms`.
    pub async fn realms(&self) -> Result<Realms, ClientError> {
        self.typed(Method::GET, "/realms", NONE).await
    }

    /// `POST /tokens`: the only answer that carries the token's secret.
    pub async fn create_token(&self, req: &CreateToken) -> Result<IssuedToken, ClientError> {
        self.typed(Method::POST, "/tokens", Some(req)).await
    }

    /// `GET /tokens`.
    pub async fn tokens(&self) -> Result<Vec<Token>, ClientError> {
        self.typed(Method::GET, "/tokens", NONE).await
    }

    /// `GET /tokens?realm=&limit=&after=`: one page, oldest first.
    pub async fn tokens_page(&self, q: &TokensQuery) -> Result<Page<Token>, ClientError> {
        self.page(&with_query("/tokens".into(), q)?).await
    }

    /// `DELETE /tokens/{id}`.
    pub async fn delete_token(&self, id: &str) -> Result<Deleted, ClientError> {
        self.typed(Method::DELETE, &format!("/tokens/{}", enc(id)), NONE).await
    }

    /// `GET /audit`.
    pub async fn audit(&self, q: &AuditQuery) -> Result<Vec<Record>, ClientError> {
        self.typed(Method::GET, &with_query("/audit".into(), q)?, NONE).await
    }

    /// `GET /audit/verify`.
    pub async fn audit_verify(&self) -> Result<Report, ClientError> {
        self.typed(Method::GET, "/audit/verify", NONE).await
    }

    /// `POST /images` with `{"name", "path"}`: a directory or tar file on the daemon's host
    /// (administrators).
    pub async fn import_image_path(&self, name: &str, path: &str) -> Result<Imported, ClientError> {
        let body = ImportPath { name: name.to_owned(), path: path.to_owned(), from: None };
        self.typed(Method::POST, "/images", Some(&body)).await
    }

    /// `POST /images` with `{"name", "from": {"container", "snapshot"}}`: publishes that
    /// snapshot as image `name` (administrators).
    pub async fn publish_snapshot(&self, name: &str, container: &str, snapshot: &str) -> Result<Imported, ClientError> {
        let from = SnapshotRef { container: container.to_owned(), snapshot: snapshot.to_owned() };
        let body = ImportPath { name: name.to_owned(), path: String::new(), from: Some(from) };
        self.typed(Method::POST, "/images", Some(&body)).await
    }

    /// `POST /images?name=NAME` with a tar stream (plain, gzip or zstd) as the body; `len` is
    /// sent as its Content-Length when known.
    pub async fn import_image_tar(&self, name: &str, body: ReqBody, len: Option<u64>) -> Result<Imported, ClientError> {
        self.upload(&format!("/images?name={}", enc(name)), body, len).await?.data()
    }

    /// `POST path` with a tar stream as the body (its Content-Length when known).
    async fn upload(&self, path: &str, body: ReqBody, len: Option<u64>) -> Result<Answer, ClientError> {
        let mut b = self.request_builder(Method::POST, path).header(header::CONTENT_TYPE, "application/x-tar");
        if let Some(n) = len {
            b = b.header(header::CONTENT_LENGTH, n);
        }
        let resp = self.send(b.body(body)?).await?;
        let status = resp.status();
        let body: Bytes = resp.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }

    /// `POST /images?name=NAME&async=true` with a tar stream: the operation, at once; the body
    /// goes on being sent on this connection while the daemon imports it.
    pub async fn import_image_tar_async(&self, name: &str, body: ReqBody, len: Option<u64>) -> Result<Operation, ClientError> {
        self.upload(&format!("/images?name={}&async=true", enc(name)), body, len).await?.data::<Accepted>().map(|a| a.operation)
    }

    /// `POST /images?async=true` with `{"name", "path"}`: the operation, at once.
    pub async fn import_image_path_async(&self, name: &str, path: &str) -> Result<Operation, ClientError> {
        let body = ImportPath { name: name.to_owned(), path: path.to_owned(), from: None };
        self.typed::<Accepted>(Method::POST, "/images?async=true", Some(&body)).await.map(|a| a.operation)
    }

    /// `PATCH /containers/{id}/snapshots/{name}?async=true`: the restore's operation, at once.
    pub async fn restore_snapshot_async(&self, id: &str, name: &str) -> Result<Operation, ClientError> {
        let path = format!("{}/snapshots/{}?async=true", container(id), enc(name));
        self.typed::<Accepted>(Method::PATCH, &path, NONE).await.map(|a| a.operation)
    }

    /// `GET /operations`.
    pub async fn operations(&self) -> Result<Vec<Operation>, ClientError> {
        self.typed(Method::GET, "/operations", NONE).await
    }

    /// `GET /operations/{operation_id}`.
    pub async fn operation(&self, id: &str) -> Result<Operation, ClientError> {
        self.typed(Method::GET, &format!("/operations/{}", enc(id)), NONE).await
    }

    /// `DELETE /operations/{operation_id}`: cancel a running import.
    pub async fn cancel_operation(&self, id: &str) -> Result<Operation, ClientError> {
        self.typed(Method::DELETE, &format!("/operations/{}", enc(id)), NONE).await
    }

    /// `GET /images`.
    pub async fn images(&self) -> Result<Vec<Image>, ClientError> {
        self.typed(Method::GET, "/images", NONE).await
    }

    /// `GET /images?limit=&after=`: one page, oldest first.
    pub async fn images_page(&self, q: &PageQuery) -> Result<Page<Image>, ClientError> {
        self.page(&with_query("/images".into(), q)?).await
    }

    /// `GET /images/{name}`.
    pub async fn image(&self, name: &str) -> Result<Image, ClientError> {
        self.typed(Method::GET, &format!("/images/{}", enc(name)), NONE).await
    }

    /// `DELETE /images/{name}`.
    pub async fn delete_image(&self, name: &str) -> Result<Deleted, ClientError> {
        self.typed(Method::DELETE, &format!("/images/{}", enc(name)), NONE).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_say_only_what_is_set() {
        assert_eq!(with_query("/c".into(), &Lifecycle::default()).unwrap(), "/c");
        assert_eq!(with_query("/c".into(), &Lifecycle { force: true, timeout: Some(3), start: false }).unwrap(), "/c?force=true&timeout=3");
        let q = AuditQuery { container: Some("a b".into()), limit: Some(5), ..Default::default() };
        assert_eq!(with_query("/audit".into(), &q).unwrap(), "/audit?container=a+b&limit=5");
    }
}
