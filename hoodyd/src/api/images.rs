//! Image endpoints. `POST /images?name=NAME` with a tar body (plain, gzip or zstd) imports an
//! upload; `POST /images` with `{"name", "path"}` imports a directory or tar file that is on
//! the host (administrators only).

use std::path::PathBuf;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use futures::TryStreamExt;
use serde::Deserialize;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::AppState;
use super::body::{MAX_JSON_BODY, parse, read_capped};
use super::error::{ApiError, ApiResult, data};
use super::query::Query;
use crate::runtime::images::ImageSource;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    pub name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportPath {
    name: String,
    path: PathBuf,
}

pub async fn import(State(st): State<AppState>, Query(q): Query<ImportQuery>, req: Request) -> ApiResult<impl IntoResponse> {
    let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    let imported = if is_json {
        let body = read_capped(req, MAX_JSON_BODY).await?;
        let p: ImportPath = parse(&body)?;
        if !p.path.is_absolute() {
            return Err(ApiError::invalid("path: must be an absolute path on the host"));
        }
        st.rt.import_image(&p.name, ImageSource::Path(p.path)).await?
    } else {
        let name = q.name.ok_or_else(|| ApiError::invalid("name: the query parameter ?name= is required for an upload"))?;
        crate::ids::validate_image_name("name", &name)?;
        let stream = req.into_body().into_data_stream().map_err(std::io::Error::other);
        let reader = SyncIoBridge::new(StreamReader::new(stream));
        st.rt.import_image(&name, ImageSource::Tar(Box::new(reader))).await?
    };
    Ok((StatusCode::CREATED, data(imported)))
}

pub async fn list(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(data(st.rt.list_images().await?))
}

pub async fn get(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(data(st.rt.get_image(&name).await?))
}

pub async fn delete(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<impl IntoResponse> {
    let img = st.rt.delete_image(&name).await?;
    Ok(data(serde_json::json!({ "name": img.name, "deleted": true })))
}
