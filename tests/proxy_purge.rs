//! Purging the caching proxy's cache, over TCP with the real binary and a counting origin:
//! `POST /purge` on the admin listener (by URL, by tag, soft) and `--purge`, `--purge-tag`,
//! `--soft` from the command line. The public port does not serve `/purge`.
//!
//! `cargo test` builds the examples before running the tests; with a test filter such as
//! `--test proxy_purge` build it first: `cargo build --example caching_proxy`.

use http::response::Builder;
use std::net::SocketAddr;

use http::{Response, StatusCode};

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::{Proxy, start_proxy, test_runtime_dir};
#[path = "support/counting_origin.rs"]
mod counting_origin;
use counting_origin::{
    Answer, CountingOrigin, Exchange, OriginBody, admin_of, reply, run_binary, send,
};

/// A counting origin. Fresh for a minute: `/vary` (varies on `Accept-Language`), `/tag/a`
/// (`Surrogate-Key: red all`), `/tag/b` (`Cache-Tag: blue, all`), `/plain`, and `/etag`
/// (with an `ETag`, `stale-if-error=600`, and a 304 for a matching `If-None-Match`). Every
/// other request is answered `origin saw METHOD TARGET`, not stored. While failing, every
/// answer is a 503.
async fn start_origin() -> CountingOrigin {
    CountingOrigin::builder()
        .route("/vary", |e| fresh(e, &[("vary", "accept-language")]))
        .route("/tag/a", |e| fresh(e, &[("surrogate-key", "red all")]))
        .route("/tag/b", |e| fresh(e, &[("cache-tag", "blue, all")]))
        .route("/plain", |e| fresh(e, &[]))
        .route("/etag", etag)
        .fallback(|exchange| {
            let builder = Response::builder().header("cache-control", "no-store");
            let (method, target) = (exchange.req.method(), exchange.req.uri());
            reply(builder, format!("origin saw {method} {target}"))
        })
        .start()
        .await
}
/// `Cache-Control: max-age=60` and the `extra` header fields.
fn fresh_builder(extra: &[(&str, &str)]) -> Builder {
    let builder = Response::builder().header("cache-control", "max-age=60");
    extra.iter().fold(builder, |builder, (name, value)| {
        builder.header(*name, *value)
    })
}

/// Fresh for a minute, with the `extra` header fields: `PATH LANG` (the request's
/// `Accept-Language`, if any).
fn fresh(exchange: &Exchange, extra: &[(&str, &str)]) -> Response<OriginBody> {
    let lang = exchange
        .req
        .headers()
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let body = format!("{} {lang}", exchange.path());
    reply(fresh_builder(extra), body)
}

/// `/etag`: fresh, with an `ETag` and `stale-if-error=600`; a 304 for a matching
/// `If-None-Match`.
fn etag(exchange: &Exchange) -> Response<OriginBody> {
    let extra = [("cache-control", "stale-if-error=600"), ("etag", "\"v1\"")];
    let inm = exchange.req.headers().get("if-none-match");
    if inm.is_some_and(|v| v == "\"v1\"") {
        return reply(fresh_builder(&extra).status(StatusCode::NOT_MODIFIED), "");
    }
    fresh(exchange, &extra)
}

/// `GET path` on the proxy's public port.
async fn get(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(proxy.addr, "GET", path, headers).await
}

/// The admin listener of `proxy` and its `Authorization` value, from its admin file.
fn admin_bearer(proxy: &Proxy) -> (SocketAddr, String) {
    let (admin, token) = admin_of(&test_runtime_dir(), proxy.addr.port());
    (admin, format!("Bearer {token}"))
}

/// `POST /purge?{query}` on the admin listener, with the token.
async fn admin_purge(proxy: &Proxy, query: &str) -> Answer {
    let (admin, bearer) = admin_bearer(proxy);
    send(
        admin,
        "POST",
        &format!("/purge?{query}"),
        &[("authorization", &bearer)],
    )
    .await
}

/// Runs the binary with `args` (and `--port` of `proxy`) to completion: (exit code, stdout,
/// stderr).
async fn cli(proxy: &Proxy, args: &[&str]) -> (Option<i32>, String, String) {
    let port = proxy.addr.port().to_string();
    let args = [args, &["--port", &port]].concat();
    run_binary(&args, Some(&test_runtime_dir())).await
}

/// `POST /purge?url=` removes the URL's entry with both of its `Vary` variants; `--purge`
/// does the same from the command line, with a path or with an absolute URL naming any
/// host (the proxy keys by its origin).
#[tokio::test]
async fn purge_by_url_removes_every_variant() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    for lang in ["en", "fr"] {
        assert_eq!(
            get(&proxy, "/vary", &[("accept-language", lang)])
                .await
                .x_cache(),
            "MISS"
        );
        assert_eq!(
            get(&proxy, "/vary", &[("accept-language", lang)])
                .await
                .x_cache(),
            "HIT"
        );
    }
    assert_eq!(get(&proxy, "/plain", &[]).await.x_cache(), "MISS");
    assert_eq!(origin.hits(), 3);

    let purged = admin_purge(&proxy, "url=/vary").await;
    assert_eq!(purged.status, StatusCode::OK);
    assert_eq!(purged.text(), "1\n");
    assert_eq!(purged.field("cache-control"), "no-store");
    for lang in ["en", "fr"] {
        let answer = get(&proxy, "/vary", &[("accept-language", lang)]).await;
        assert_eq!(answer.x_cache(), "MISS", "{lang}");
        assert_eq!(answer.text(), format!("/vary {lang}"));
    }
    assert_eq!(origin.hits(), 5);
    assert_eq!(get(&proxy, "/plain", &[]).await.x_cache(), "HIT");

    // The command line, with the path...
    let (code, stdout, stderr) = cli(&proxy, &["--purge", "/vary"]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        format!(
            "purged 1 entry for /vary from the cache at {}\n",
            proxy.addr
        )
    );
    assert_eq!(
        get(&proxy, "/vary", &[("accept-language", "en")])
            .await
            .x_cache(),
        "MISS"
    );
    // ... or with an absolute URL, whatever its scheme and host.
    let url = format!("https://localhost:{}/plain", proxy.addr.port());
    let (code, stdout, stderr) = cli(&proxy, &["--purge", &url]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        format!(
            "purged 1 entry for {url} from the cache at {}\n",
            proxy.addr
        )
    );
    assert_eq!(get(&proxy, "/plain", &[]).await.x_cache(), "MISS");
    let (code, stdout, _) = cli(&proxy, &["--purge", "/never-stored"]).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("purged 0 entries for /never-stored"),
        "{stdout}"
    );
    assert_eq!(origin.hits(), 7);
}

/// `POST /purge?tag=` and `--purge-tag` remove the entries tagged in `Surrogate-Key` or
/// `Cache-Tag`, and only those.
#[tokio::test]
async fn purge_by_tag_removes_only_the_tagged_entries() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    for path in ["/tag/a", "/tag/b", "/plain"] {
        assert_eq!(get(&proxy, path, &[]).await.x_cache(), "MISS");
    }

    let purged = admin_purge(&proxy, "tag=red").await;
    assert_eq!(
        (purged.status, purged.text().as_str()),
        (StatusCode::OK, "1\n")
    );
    assert_eq!(get(&proxy, "/tag/a", &[]).await.x_cache(), "MISS");
    assert_eq!(get(&proxy, "/tag/b", &[]).await.x_cache(), "HIT");
    assert_eq!(get(&proxy, "/plain", &[]).await.x_cache(), "HIT");
    assert_eq!(origin.hits(), 4);

    let (code, stdout, stderr) = cli(&proxy, &["--purge-tag", "all"]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        format!(
            "purged 2 entries tagged all from the cache at {}\n",
            proxy.addr
        )
    );
    assert_eq!(get(&proxy, "/tag/a", &[]).await.x_cache(), "MISS");
    assert_eq!(get(&proxy, "/tag/b", &[]).await.x_cache(), "MISS");
    assert_eq!(get(&proxy, "/plain", &[]).await.x_cache(), "HIT");
    assert_eq!(origin.hits(), 6);
}

/// A soft purge keeps the entry, marked stale: the next request is a conditional one (the
/// origin sees `If-None-Match`) and its 304 serves the stored body; after another soft
/// purge, with the origin failing, the stale copy answers under `stale-if-error`.
#[tokio::test]
async fn soft_purge_revalidates_and_covers_an_origin_failure() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    assert_eq!(get(&proxy, "/etag", &[]).await.x_cache(), "MISS");
    assert_eq!(get(&proxy, "/etag", &[]).await.x_cache(), "HIT");
    assert_eq!(origin.hits(), 1);

    let (code, stdout, stderr) = cli(&proxy, &["--purge", "/etag", "--soft"]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        format!(
            "marked 1 entry for /etag stale in the cache at {}\n",
            proxy.addr
        )
    );
    let answer = get(&proxy, "/etag", &[]).await;
    assert_eq!(origin.hits(), 2);
    assert_eq!(
        origin
            .last_seen()
            .headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok()),
        Some("\"v1\""),
        "a conditional request"
    );
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.x_cache(), "HIT");
    assert!(
        answer.field("cache-status").contains("fwd-status=304"),
        "{answer:?}"
    );
    assert_eq!(answer.text(), "/etag ");
    assert_eq!(
        get(&proxy, "/etag", &[]).await.x_cache(),
        "HIT",
        "fresh again"
    );
    assert_eq!(origin.hits(), 2);

    let purged = admin_purge(&proxy, "url=%2Fetag&soft=1").await;
    assert_eq!(
        (purged.status, purged.text().as_str()),
        (StatusCode::OK, "1\n")
    );
    origin.set_failing(true);
    let answer = get(&proxy, "/etag", &[]).await;
    assert_eq!(origin.hits(), 3);
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "/etag ");
    assert!(
        answer
            .field("cache-status")
            .contains("detail=stale-if-error"),
        "{answer:?}"
    );
}

/// `--soft` with `--purge-tag`, and `soft=1` with `tag=`: the tagged entries are revalidated
/// by their next request, the others stay fresh.
#[tokio::test]
async fn soft_purge_by_tag_marks_only_the_tagged_entries() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    for path in ["/tag/a", "/tag/b", "/plain"] {
        get(&proxy, path, &[]).await;
    }
    let (code, stdout, stderr) = cli(&proxy, &["--purge-tag", "blue", "--soft"]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        format!(
            "marked 1 entry tagged blue stale in the cache at {}\n",
            proxy.addr
        )
    );
    assert_eq!(get(&proxy, "/tag/a", &[]).await.x_cache(), "HIT");
    assert_eq!(get(&proxy, "/tag/b", &[]).await.x_cache(), "MISS");
    assert_eq!(origin.hits(), 4);
    let purged = admin_purge(&proxy, "tag=all&soft=1").await;
    assert_eq!(purged.text(), "2\n");
    assert_eq!(get(&proxy, "/plain", &[]).await.x_cache(), "HIT");
    assert_eq!(get(&proxy, "/tag/a", &[]).await.x_cache(), "MISS");
    assert_eq!(origin.hits(), 5);
}

/// `/purge` needs the token (401 as `/clear`), `POST`, and one valid parameter (400 with a
/// one-line reason otherwise); nothing is purged by a refused request.
#[tokio::test]
async fn purge_needs_the_token_and_a_valid_target() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    get(&proxy, "/plain", &[]).await;
    let (admin, bearer) = admin_bearer(&proxy);

    let refused = send(admin, "POST", "/purge?url=/plain", &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.field("www-authenticate").starts_with("Bearer"));
    let wrong = format!("Bearer {}", "0".repeat(64));
    let refused = send(
        admin,
        "POST",
        "/purge?url=/plain",
        &[("authorization", &wrong)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let get_purge = send(
        admin,
        "GET",
        "/purge?url=/plain",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(get_purge.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get_purge.field("allow"), "POST");

    for query in [
        "",
        "?",
        "?url=",
        "?soft=1",
        "?url=/a&tag=b",
        "?tag=a%20b",
        "?url=x",
        "?what=1",
    ] {
        let answer = send(
            admin,
            "POST",
            &format!("/purge{query}"),
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        let text = answer.text();
        assert!(text.starts_with("bad request: "), "{query}: {text:?}");
        assert_eq!(text.lines().count(), 1, "{query}: {text:?}");
        assert_eq!(answer.field("cache-control"), "no-store");
    }
    assert_eq!(get(&proxy, "/plain", &[]).await.x_cache(), "HIT");
    assert_eq!(origin.hits(), 1);
}

/// The public port serves no purge: `POST /purge?url=…` there is an ordinary request,
/// forwarded to the origin, and the cache keeps its entries.
#[tokio::test]
async fn the_public_port_does_not_serve_purge() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    get(&proxy, "/plain", &[]).await;
    let (_, bearer) = admin_bearer(&proxy);

    let answer = send(
        proxy.addr,
        "POST",
        "/purge?url=/plain",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.x_cache(), "MISS");
    assert_eq!(answer.text(), "origin saw POST /purge?url=/plain");
    assert_eq!(origin.hits(), 2);
    assert_eq!(get(&proxy, "/plain", &[]).await.x_cache(), "HIT");
    assert_eq!(origin.hits(), 2);
}

/// `--purge` and `--purge-tag` fail as `--clear-cache` does: exit 1 with one line when the
/// proxy cannot be reached or refuses, exit 2 for bad flags.
#[tokio::test]
async fn purge_flags_exit_codes() {
    let origin = start_origin().await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    for args in [
        &["--soft"][..],
        &["--purge", "/a", "--purge-tag", "b"],
        &["--purge", "/a", "--clear-cache"],
        &["--purge-tag", "a,b"],
        &["--purge", ""],
        &["--purge", "/a", "--origin", "http://127.0.0.1:1"],
    ] {
        let (code, stdout, stderr) = cli(&proxy, args).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    // Refused by the proxy: not a path or a URL.
    let (code, stdout, stderr) = cli(&proxy, &["--purge", "relative"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("400"), "{stderr}");
    // No proxy on that port.
    let port = proxy_process::free_port().to_string();
    let args = ["--purge", "/a", "--port", &port];
    let (code, _, stderr) = run_binary(&args, Some(&test_runtime_dir())).await;
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1);
    assert_eq!(origin.hits(), 0);
}
