//! Image endpoints. `POST /images?name=NAME` with a tar body (plain, gzip or zstd) imports an
//! upload; `POST /images` with `{"name", "path"}` imports a directory or tar file that is on
//! the host (administrators only).

use std::path::PathBuf;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::AppState;
use super::body::{MAX_JSON_BODY, parse, read_capped};
use super::error::{ApiError, ApiResult, data};
use super::query::Query;
use crate::operations::Counting;
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
pub async fn import(State(st): State<AppState>, Query(q): Query<ImportQuery>, req: Request) -> ApiResult<Response> {
    if q.in_background {
        return import_in_background(st, q, req).await;
    }
    let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    let imported = if is_json {
        let body = read_capped(req, MAX_JSON_BODY).await?;
        let p: ImportPath = parse(&body)?;
        let path = PathBuf::from(&p.path);
        if !path.is_absolute() {
            return Err(ApiError::invalid("path: must be an absolute path on the host"));
        }
        st.rt.import_image(&p.name, ImageSource::Path(path)).await?
    } else {
        let name = q.name.ok_or_else(|| ApiError::invalid("name: the query parameter ?name= is required for an upload"))?;
        crate::ids::validate_image_name("name", &name)?;
        let stream = req.into_body().into_data_stream().map_err(std::io::Error::other);
        let reader = SyncIoBridge::new(StreamReader::new(stream));
        st.rt.import_image(&name, ImageSource::Tar(Box::new(reader))).await?
    };
    Ok((StatusCode::CREATED, data(imported)).into_response())
}

/// `?async=true`: 202 and the operation at once; the import (an upload's body read as it
/// arrives, counted against its Content-Length) runs on.
async fn import_in_background(st: AppState, q: ImportQuery, req: Request) -> ApiResult<Response> {
    let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    let total = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let (name, src, total) = if is_json {
        let body = read_capped(req, MAX_JSON_BODY).await?;
        let p: ImportPath = parse(&body)?;
        let path = PathBuf::from(&p.path);
        if !path.is_absolute() {
            return Err(ApiError::invalid("path: must be an absolute path on the host"));
        }
        crate::ids::validate_image_name("name", &p.name)?;
        (p.name, Err(path), None)
    } else {
        let name = q.name.ok_or_else(|| ApiError::invalid("name: the query parameter ?name= is required for an upload"))?;
        crate::ids::validate_image_name("name", &name)?;
        let stream = req.into_body().into_data_stream().map_err(std::io::Error::other);
        (name, Ok(SyncIoBridge::new(StreamReader::new(stream))), total)
    };
    if st.rt.get_image(&name).await.is_ok() {
        return Err(ApiError::state(hoody_api::envelope::ErrorCode::AlreadyExists, format!("image {name:?} already exists")));
    }
    let (op, handle) = st.operations.start(OperationKind::ImageImport, &name, None, total);
    let src = match src {
        Ok(reader) => ImageSource::Tar(Box::new(Counting::new(reader, handle.clone()))),
        Err(path) => ImageSource::Path(path),
    };
    let rt = st.rt.clone();
    tokio::spawn(async move {
        let r = rt.import_image(&name, src).await;
        handle.finish(r.map(|i| OperationResult::Imported(Box::new(i))).map_err(|e| ApiError::from(e).body()));
    });
    Ok((StatusCode::ACCEPTED, data(Accepted { operation: op })).into_response())
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
