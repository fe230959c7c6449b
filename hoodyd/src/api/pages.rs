//! Pages of lists: items in their order (oldest first), at most `limit` of them after the
//! cursor `after`; when more follow, the answer's `X-Next-Cursor` header holds the cursor of
//! the next page (so `data` stays a plain array). A cursor is the last item's sort key — its
//! creation time and its id or name — so a page is right even when that item is gone since.

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::{ApiError, data};

pub use hoody_api::paths::NEXT_CURSOR;
/// Items a page holds at most (and by default).
pub const MAX_LIMIT: usize = 10_000;

/// The page of `items` (sorted here by `key`) after `after`, at most `limit`; the cursor of the
/// next page when more follow.
pub fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = limit.unwrap_or(MAX_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!("limit: must be 1 to {MAX_LIMIT}")).field("?limit"));
    }
    items.sort_by_cached_key(|t| key(t));
    if let Some(a) = after {
        items.retain(|t| key(t).as_str() > a);
    }
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(&key) } else { None };
    Ok((items, next))
}

/// `{"data": items}` with the next page's cursor, if any, in `X-Next-Cursor`.
pub fn answer<T: Serialize>(items: T, next: Option<String>) -> Response {
    let mut r = data(items).into_response();
    if let Some(v) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        r.headers_mut().insert(NEXT_CURSOR, v);
    }
    r
}

/// The sort key of something created at `created_at` (RFC 3339, fixed width) named `id`.
pub fn key(created_at: &str, id: &str) -> String {
    format!("{created_at}.{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let items: Vec<(String, String)> = (0..7).map(|i| (format!("2026-12-04T00:00:0{i}.000Z"), format!("id{i}"))).rev().collect();
        let k = |t: &(String, String)| key(&t.0, &t.1);
        let (p1, c1) = page(items.clone(), k, None, Some(3)).unwrap();
        assert_eq!(p1.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["id0", "id1", "id2"]);
        let (p2, c2) = page(items.clone(), k, c1.as_deref(), Some(3)).unwrap();
        assert_eq!(p2.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["id3", "id4", "id5"]);
        let (p3, c3) = page(items.clone(), k, c2.as_deref(), Some(3)).unwrap();
        assert_eq!((p3.len(), c3), (1, None));
        // The item the cursor names is gone: the next page is still where it was.
        let fewer: Vec<_> = items.into_iter().filter(|t| t.1 != "id2").collect();
        let (p2b, _) = page(fewer, k, c1.as_deref(), Some(3)).unwrap();
        assert_eq!(p2b[0].1, "id3");
        assert!(page(Vec::<(String, String)>::new(), k, None, Some(0)).is_err());
    }
}
