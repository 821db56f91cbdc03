//! The Redis store (feature `redis`), over TCP with real `caching_proxy` processes sharing one
//! real `redis-server` and a real counting origin: entries shared between proxies,
//! invalidations and clears reaching every proxy's memory tier, collapsed forwarding across
//! proxies, and Redis failing under load.
//!
//! Each test starts its own `redis-server` on a free port (`--save '' --appendonly no`) and
//! kills it at the end. Without `redis-server` on the PATH, or with a `caching_proxy` built
//! without the feature, the tests are skipped with a printed reason, unless
//! `TCL_REQUIRE_REDIS` is set (CI sets it): then they fail.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;

#[path = "support/proxy.rs"]
mod proxy_process;
#[path = "support/redis.rs"]
mod redis_support;
use proxy_process::{free_port, test_runtime_dir};
use redis_support::{
    Origin, RedisServer, can_run, client, get, logging_proxy, proxies, run_cli, send, settle,
};

#[tokio::test]
async fn a_miss_on_one_proxy_is_a_hit_on_another_and_a_put_invalidates_both() {
    if !can_run("redis_store::shared") {
        return;
    }
    let (redis, origin) = (RedisServer::start().await, Origin::start().await);
    let p = proxies(2, &origin, &redis, "shared:").await;
    assert_eq!(get(&p[0], "/doc").await, "MISS");
    settle().await;
    assert_eq!(get(&p[1], "/doc").await, "HIT");
    assert_eq!(get(&p[1], "/doc").await, "HIT");
    assert_eq!(origin.count("/doc"), 1);

    // RFC 9111 §4.4 through A: B's memory tier drops it too.
    let (status, _) = send(&client(), &p[0], "PUT", "/doc").await.expect("PUT");
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&p[1], "/doc").await, "MISS");
    assert_eq!(origin.count("/doc"), 3); // GET, PUT, GET
    settle().await;
    assert_eq!(get(&p[0], "/doc").await, "HIT");
}

#[tokio::test]
async fn clear_purge_and_purge_by_tag_through_one_proxy_reach_every_proxy() {
    if !can_run("redis_store::clear_and_purge") {
        return;
    }
    let (redis, origin) = (RedisServer::start().await, Origin::start().await);
    let p = proxies(2, &origin, &redis, "clear:").await;
    for path in ["/a", "/b"] {
        assert_eq!(get(&p[0], path).await, "MISS");
        settle().await;
        assert_eq!(get(&p[1], path).await, "HIT"); // now in B's memory tier too
    }

    // --purge through A: B's memory tier drops /a, not /b.
    let port = p[0].addr.port().to_string();
    let (_, out) = run_cli(&["--purge", "/a", "--port", &port]).await;
    assert!(out.starts_with("purged "), "{out}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&p[1], "/a").await, "MISS");
    assert_eq!(get(&p[1], "/b").await, "HIT");

    // --purge-tag through A (every origin response carries `Surrogate-Key: all`): the tag's
    // set in Redis names /a (stored again by B's miss) and /b; B's memory tier drops them.
    let (_, out) = run_cli(&["--purge-tag", "all", "--port", &port]).await;
    assert!(out.starts_with("purged 2 entries tagged all"), "{out}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&p[1], "/b").await, "MISS");
    settle().await;

    // --clear-cache through A: everything, everywhere.
    let (_, out) = run_cli(&["--clear-cache", "--port", &port]).await;
    assert!(out.starts_with("cleared "), "{out}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&p[1], "/b").await, "MISS");
    settle().await;
    assert_eq!(get(&p[0], "/b").await, "HIT"); // stored again by B's miss

    // --clear-cache --store redis://…: directly, no proxy needed.
    let url = redis.url();
    let args = ["--clear-cache", "--store", &url, "--redis-prefix", "clear:"];
    let (_, out) = run_cli(&args).await;
    assert!(out.starts_with("cleared 1 entry"), "{out}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&p[1], "/b").await, "MISS");
    settle().await;
    assert_eq!(get(&p[0], "/b").await, "HIT");
}

#[tokio::test]
async fn concurrent_misses_over_three_proxies_reach_the_origin_at_most_three_times() {
    if !can_run("redis_store::collapsing") {
        return;
    }
    let (redis, origin) = (RedisServer::start().await, Origin::start().await);
    let p = Arc::new(proxies(3, &origin, &redis, "collapse:").await);
    let client = client();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (p, client) = (Arc::clone(&p), client.clone());
        tasks.push(tokio::spawn(async move {
            send(&client, &p[i % 3], "GET", "/slow/cold").await
        }));
    }
    let mut statuses = HashMap::new();
    for task in tasks {
        let (status, x_cache) = task.await.expect("task").expect("request");
        assert_eq!(status, StatusCode::OK);
        *statuses.entry(x_cache).or_insert(0) += 1;
    }
    let calls = origin.count("/slow/cold");
    eprintln!("300 concurrent requests over 3 proxies: {calls} origin request(s), {statuses:?}");
    assert!(calls <= 3, "the origin saw {calls} requests");
}

#[tokio::test]
async fn redis_failing_under_load_is_never_an_error_and_hits_return_after_a_restart() {
    if !can_run("redis_store::failure") {
        return;
    }
    let (redis, origin) = (RedisServer::start().await, Origin::start().await);
    // A logs to a file (the proxy logs to stdout), to count what it said.
    let log_path = test_runtime_dir().join(format!("redis-fail-{}.log", free_port()));
    let a = Arc::new(logging_proxy(&origin, &redis, "fail:", &log_path).await);
    let b = proxies(1, &origin, &redis, "fail:").await.remove(0);

    // 8 clients for 2 s against A, half new URLs (each a Redis lookup and write), half hot
    // ones; Redis is killed after 0.5 s.
    let client = client();
    let until = Instant::now() + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (a, client) = (Arc::clone(&a), client.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut bad) = (0_u32, Vec::new());
            for i in 0.. {
                if Instant::now() >= until {
                    break;
                }
                let path = if i % 2 == 0 {
                    format!("/load/{c}/{i}")
                } else {
                    format!("/hot/{}", i % 10)
                };
                match send(&client, &a, "GET", &path).await {
                    Ok((status, _)) if status.is_success() => ok += 1,
                    Ok((status, _)) => bad.push(status.to_string()),
                    Err(error) => bad.push(error),
                }
            }
            (ok, bad)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let port = redis.kill();
    let (mut ok, mut bad) = (0, Vec::new());
    for task in tasks {
        let (o, b) = task.await.expect("task");
        ok += o;
        bad.extend(b);
    }
    eprintln!("8 clients for 2 s, Redis killed after 0.5 s: {ok} answers, {bad:?}");
    assert!(bad.is_empty(), "errors or 5xx: {bad:?}");
    assert!(ok > 100, "only {ok} answers");

    // Redis back (empty) on the same port: a response stored through A is a hit on B again.
    let redis = RedisServer::start_on(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        let path = format!("/after/{i}");
        assert_eq!(get(&a, &path).await, "MISS");
        settle().await;
        if get(&b, &path).await == "HIT" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no hit on B within 10 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The log said it once, not per request.
    drop(a);
    let log = std::fs::read_to_string(&log_path).expect("A's log");
    let _ = std::fs::remove_file(&log_path);
    assert_eq!(log.matches("Redis unreachable").count(), 1, "{log}");
    assert_eq!(log.matches("Redis reachable again").count(), 1, "{log}");
    drop(redis);
}

#[tokio::test]
async fn a_stalled_redis_costs_bounded_time_and_no_errors_and_invalidations_wait_for_it() {
    if !can_run("redis_store::stalled") {
        return;
    }
    let (redis, origin) = (RedisServer::start().await, Origin::start().await);
    let p = Arc::new(proxies(2, &origin, &redis, "stall:").await);
    let pid = redis.child.id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill").args([name, &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {name} {pid}");
    };

    assert_eq!(get(&p[0], "/doc").await, "MISS");
    settle().await;
    assert_eq!(get(&p[1], "/doc").await, "HIT"); // in B's memory tier too

    // Redis stops answering (SIGSTOP): each miss waits for its commands' time limits only.
    signal("-STOP");
    let client = client();
    // An invalidation that Redis cannot answer now takes effect once it answers again (the
    // command waits in the connection; one that failed outright is sent again).
    let (status, _) = send(&client, &p[0], "PUT", "/doc").await.expect("PUT");
    assert_eq!(status, StatusCode::OK);
    let mut tasks = Vec::new();
    for c in 0..4 {
        let (p, client) = (Arc::clone(&p), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for i in 0..10 {
                let started = Instant::now();
                let (status, _) = send(&client, &p[0], "GET", &format!("/stalled/{c}/{i}"))
                    .await
                    .expect("an answer");
                assert_eq!(status, StatusCode::OK);
                slowest = slowest.max(started.elapsed());
            }
            slowest
        }));
    }
    let mut slowest = Duration::ZERO;
    for task in tasks {
        slowest = slowest.max(task.await.expect("task"));
    }
    signal("-CONT");
    eprintln!("Redis stalled: slowest of 40 misses took {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");

    // Redis answers again: shared hits return.
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        let path = format!("/resumed/{i}");
        assert_eq!(get(&p[0], &path).await, "MISS");
        settle().await;
        if get(&p[1], &path).await == "HIT" {
            break;
        }
        assert!(Instant::now() < deadline, "no hit on B within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&p[1], "/doc").await, "MISS");
}
