//! The admin routes: what each answers.

use super::*;

/// Answers one admin request.
pub(super) async fn respond(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(route) = Route::for_path(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found: no such admin route");
    };
    let allowed = route.method();
    if req.method() != allowed {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed: use {allowed}"),
        );
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_str(allowed.as_str()).expect("a method is a valid header value"),
        );
        return response;
    }
    if route.needs_token() {
        if let Some(reason) = unauthorized(&req, &state.token) {
            tracing::warn!(path = req.uri().path(), reason, "admin request refused");
            let mut response = plain(StatusCode::UNAUTHORIZED, reason);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tower-cache-layer admin\""),
            );
            return response;
        }
    }
    match route {
        Route::Clear => match state.cache.clear().await {
            Ok(removed) => {
                tracing::info!(removed, "cache cleared");
                plain(StatusCode::OK, removed.to_string())
            }
            Err(err) => {
                tracing::error!(error = %err, "clearing the cache failed");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal server error: cannot clear the cache ({err})"),
                )
            }
        },
        Route::Purge => purge(state, req.uri().query()).await,
        Route::Metrics => metrics(state).await,
    }
}

/// `GET /metrics`: the Prometheus text format (version 0.0.4).
async fn metrics(state: &State) -> Response<Full<Bytes>> {
    let Some(handle) = &state.metrics else {
        return plain(StatusCode::NOT_FOUND, "not found: metrics are off");
    };
    // Reading the stats updates the gauges of what the store holds.
    let _ = state.cache.stats();
    let mut response = Response::new(Full::new(Bytes::from(handle.render())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /purge`: purges what the query names.
async fn purge(state: &State, query: Option<&str>) -> Response<Full<Bytes>> {
    let query = match parse_purge_query(query) {
        Ok(query) => query,
        Err(reason) => return plain(StatusCode::BAD_REQUEST, reason),
    };
    let soft = query.soft;
    let result = match &query.target {
        PurgeTarget::Url(target) => {
            let uri = match state.front.purge_target(target) {
                Ok(uri) => uri,
                Err(reason) => return plain(StatusCode::BAD_REQUEST, reason),
            };
            let purged = if soft {
                state.cache.soft_purge(&uri).await
            } else {
                state.cache.purge(&uri).await
            };
            purged.inspect(|count| tracing::info!(%uri, count, soft, "purged by URL"))
        }
        PurgeTarget::Tag(tag) => {
            let purged = if soft {
                state.cache.soft_purge_tagged(tag).await
            } else {
                state.cache.purge_tagged(tag).await
            };
            purged.inspect(|count| tracing::info!(tag, count, soft, "purged by tag"))
        }
    };
    match result {
        Ok(count) => plain(StatusCode::OK, count.to_string()),
        Err(err) => {
            tracing::error!(error = %err, "purging failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: cannot purge ({err})"),
            )
        }
    }
}
