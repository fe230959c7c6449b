//! Image endpoints. `POST /images?name=NAME` with a tar body (plain, gzip or zstd) imports an
//! upload; `POST /images` with `{"name", "path"}` imports a directory or tar file that is on
//! the host (administrators only).

use std::path::PathBuf;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::body::{MAX_JSON_BODY, parse, read_capped};
use super::error::{ApiError, ApiResult, data};
use super::query::Query;
use super::{AppState, Caller};
use axum::Extension;
use std::io::Read;

use crate::operations::{Counting, Handle};
use crate::runtime::images::ImageSource;
use hoody_api::operations::{Accepted, OperationKind, OperationResult};

use hoody_api::images::ImportPath;
use hoody_api::query::ImportQuery;

#[utoipa::path(
    post,
    path = "/api/v1/images",
    tag = "images",
    operation_id = "image_import",
    params(hoody_api::query::ImportQuery),
    request_body(description = "A tar (plain, gzip or zstd) with ?name=, or JSON {\"name\", \"path\"} for a path on the host (administrators)", content((String = "application/x-tar"), (hoody_api::images::ImportPath = "application/json"))),
    responses(
        (status = 201, description = "Imported", body = hoody_api::envelope::Data<hoody_api::images::Imported>),
        (status = 202, description = "With ?async=true: the operation that imports (GET /operations/{operation_id})", body = hoody_api::envelope::Data<hoody_api::operations::Accepted>)
    )
)]
pub async fn import(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ImportQuery>,
    req: Request,
) -> ApiResult<Response> {
    let in_background = q.in_background;
    let (name, source) = read_request(&st, &caller, q, req).await?;
    if !in_background {
        let imported = st.rt.import_image(&name, source.into_image_source(None)).await?;
        return Ok((StatusCode::CREATED, data(imported)).into_response());
    }
    // `?async=true`: 202 and the operation at once (what the import would refuse at once is
    // refused here); the import, an upload's body read as it arrives, runs on.
    st.rt.check_new_image(&name).await?;
    let total = match &source {
        Source::Upload(_, len) => *len,
        Source::Path(_) | Source::Snapshot { .. } => None,
    };
    let (op, handle) = st.operations.start(OperationKind::ImageImport, &name, None, total);
    let src = source.into_image_source(Some(&handle));
    let rt = st.rt.clone();
    tokio::spawn(async move {
        let r = rt.import_image(&name, src).await;
        handle.finish(r.map(|i| OperationResult::Imported(Box::new(i))).map_err(|e| ApiError::from(e).body()));
    });
    Ok((StatusCode::ACCEPTED, data(Accepted { operation: op })).into_response())
}

/// Where an import request's tree comes from.
enum Source {
    /// The body, as a blocking reader, and its Content-Length.
    Upload(Box<dyn Read + Send>, Option<u64>),
    /// A directory or tar file on the host.
    Path(PathBuf),
    /// A snapshot of a container the caller may see.
    Snapshot { image: String, container: String, snapshot: String },
}

impl Source {
    /// The runtime's source; an upload's bytes are counted into `op` when there is one.
    fn into_image_source(self, op: Option<&Handle>) -> ImageSource {
        match (self, op) {
            (Source::Upload(r, _), Some(h)) => ImageSource::Tar(Box::new(Counting::new(r, h.clone()))),
            (Source::Upload(r, _), None) => ImageSource::Tar(r),
            (Source::Path(p), _) => ImageSource::Path(p),
            (Source::Snapshot { image, container, snapshot }, _) => ImageSource::Snapshot { image, container, snapshot },
        }
    }
}

/// The image's name and its source: JSON `{"name", "path"}`, or an upload with `?name=`.
async fn read_request(st: &AppState, caller: &Caller, q: ImportQuery, req: Request) -> ApiResult<(String, Source)> {
    let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let body = read_capped(req, MAX_JSON_BODY).await?;
        let p: ImportPath = parse(&body)?;
        if let Some(from) = p.from {
            if !p.path.is_empty() {
                return Err(ApiError::invalid("give path or from, not both").field("from"));
            }
            let c = st.rt.resolve(&from.container, &caller.filter).await?;
            st.rt.snapshot_exists(&c, &from.snapshot).await?;
            return Ok((p.name, Source::Snapshot { image: c.image, container: c.id, snapshot: from.snapshot }));
        }
        let path = PathBuf::from(&p.path);
        if !path.is_absolute() {
            return Err(ApiError::invalid("path: must be an absolute path on the host").field("path"));
        }
        return Ok((p.name, Source::Path(path)));
    }
    let name = q.name.ok_or_else(|| ApiError::invalid("name: the query parameter ?name= is required for an upload").field("?name"))?;
    crate::ids::validate_image_name("name", &name)?;
    let len = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let stream = req.into_body().into_data_stream().map_err(std::io::Error::other);
    Ok((name, Source::Upload(Box::new(SyncIoBridge::new(StreamReader::new(stream))), len)))
}

#[utoipa::path(
    get,
    path = "/api/v1/images",
    tag = "images",
    operation_id = "image_list",
    params(hoody_api::query::PageQuery),
    responses((status = 200, description = "Every image, oldest first (the next page's cursor in X-Next-Cursor)", body = hoody_api::envelope::Data<Vec<hoody_api::images::Image>>))
)]
pub async fn list(State(st): State<AppState>, Query(q): Query<hoody_api::query::PageQuery>) -> ApiResult<Response> {
    let all = st.rt.list_images().await?;
    let (page, next) = super::pages::page(all, |i| super::pages::key(&i.created_at, &i.name), q.after.as_deref(), q.limit)?;
    Ok(super::pages::answer(page, next))
}

#[utoipa::path(
    get,
    path = "/api/v1/images/{name}",
    tag = "images",
    operation_id = "image_get",
    params(("name" = String, Path, description = "Image name")),
    responses((status = 200, description = "The image", body = hoody_api::envelope::Data<hoody_api::images::Image>))
)]
pub async fn get(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(data(st.rt.get_image(&name).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/images/{name}",
    tag = "images",
    operation_id = "image_delete",
    params(("name" = String, Path, description = "Image name")),
    responses((status = 200, description = "Deleted", body = hoody_api::envelope::Data<hoody_api::common::Deleted>))
)]
pub async fn delete(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<impl IntoResponse> {
    let img = st.rt.delete_image(&name).await?;
    Ok(data(hoody_api::common::Deleted::name(img.name)))
}
