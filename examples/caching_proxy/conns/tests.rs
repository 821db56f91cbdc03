//! Unit tests.

use std::time::Duration;

use super::*;

/// Admits within `ms` milliseconds, or `None`.
async fn admit_within(registry: &Registry, ms: u64) -> Option<Admitted> {
    tokio::time::timeout(Duration::from_millis(ms), registry.admit())
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn admits_up_to_the_limit_then_waits_while_every_connection_is_busy() {
    let registry = Registry::new(2);
    let a = admit_within(&registry, 100).await.expect("first slot");
    let b = admit_within(&registry, 100).await.expect("second slot");
    let _busy_a = a.slot.request();
    let _busy_b = b.slot.request();
    assert!(
        admit_within(&registry, 100).await.is_none(),
        "admitted a third"
    );
    drop(b);
    assert!(
        admit_within(&registry, 100).await.is_some(),
        "a slot was freed"
    );
}

#[tokio::test]
async fn at_the_limit_the_least_recently_active_idle_connection_is_asked_to_close() {
    let registry = Registry::new(3);
    let mut older = admit_within(&registry, 100).await.expect("slot");
    let mut newer = admit_within(&registry, 100).await.expect("slot");
    let mut busy = admit_within(&registry, 100).await.expect("slot");
    drop(older.slot.request());
    tokio::time::sleep(Duration::from_millis(5)).await;
    drop(newer.slot.request());
    let _in_flight = busy.slot.request();

    let registry2 = registry.clone();
    let waiting = tokio::spawn(async move { registry2.admit().await.map(|a| a.slot.id) });
    tokio::time::timeout(Duration::from_secs(1), &mut older.close)
        .await
        .expect("the older idle connection is asked to close")
        .expect("signal sent");
    assert!(
        newer.close.try_recv().is_err(),
        "the newer idle one is kept"
    );
    assert!(busy.close.try_recv().is_err(), "the busy one is kept");
    drop(older);
    let id = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("admitted once the idle connection is gone")
        .expect("task")
        .expect("not shutting down");
    assert_eq!(id, 3);
}

#[tokio::test]
async fn a_connection_that_has_not_been_served_yet_is_not_closed_to_make_room() {
    let registry = Registry::new(1);
    let mut fresh = admit_within(&registry, 100).await.expect("slot");
    assert!(admit_within(&registry, 100).await.is_none());
    assert!(fresh.close.try_recv().is_err());
}

#[tokio::test]
async fn shutdown_asks_every_connection_to_close_and_refuses_new_ones() {
    let registry = Registry::new(4);
    let mut a = admit_within(&registry, 100).await.expect("slot");
    let in_flight = a.slot.request();
    registry.shutdown();
    assert!(a.close.try_recv().is_ok());
    assert!(registry.admit().await.is_none());
    drop(in_flight);
    let closed = registry.clone();
    let done = tokio::spawn(async move { closed.closed().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!done.is_finished(), "a connection is still open");
    drop(a);
    tokio::time::timeout(Duration::from_secs(1), done)
        .await
        .expect("closed once the last connection is gone")
        .expect("task");
}

#[tokio::test]
async fn close_idle_closes_only_connections_idle_for_the_timeout() {
    let registry = Registry::new(4);
    let mut idle = admit_within(&registry, 100).await.expect("slot");
    let mut busy = admit_within(&registry, 100).await.expect("slot");
    let mut unserved = admit_within(&registry, 100).await.expect("slot");
    drop(idle.slot.request());
    let _in_flight = busy.slot.request();

    registry.close_idle(Duration::from_secs(60));
    assert!(idle.close.try_recv().is_err(), "closed before the timeout");

    tokio::time::sleep(Duration::from_millis(5)).await;
    registry.close_idle(Duration::from_millis(1));
    assert!(
        idle.close.try_recv().is_ok(),
        "the idle connection was not asked"
    );
    assert!(
        busy.close.try_recv().is_err(),
        "a busy connection was asked"
    );
    // A connection still waiting for its first head is bounded by its own task's deadline.
    assert!(
        unserved.close.try_recv().is_err(),
        "an unserved one was asked"
    );
}
