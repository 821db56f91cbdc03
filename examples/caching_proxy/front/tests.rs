//! Unit tests of the front door.

use super::*;
use crate::config::parse_origin;

fn door(origin: &str, preserve_host: bool) -> FrontDoor {
    FrontDoor::new(FrontDoorConfig {
        origin: Some(parse_origin(origin).unwrap()),
        preserve_host,
        ..FrontDoorConfig::default()
    })
}

fn forward_door(allow: Option<&str>) -> FrontDoor {
    FrontDoor::new(FrontDoorConfig {
        allow: allow.map(|net| vec![net.parse().unwrap()]),
        connect_ports: vec![443],
        ..FrontDoorConfig::default()
    })
}

fn peer() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 5555))
}

fn admit(door: &FrontDoor, req: Request<()>) -> Result<Admitted<()>, Refusal> {
    match door.admit(req, peer())? {
        Admission::Request(admitted) => Ok(admitted),
        Admission::Tunnel { target, .. } => panic!("a tunnel to {target}"),
    }
}

#[test]
fn absolute_form_target_and_host_both_become_the_origin() {
    let door = door("http://127.0.0.1:8000", false);
    let req = Request::get("http://attacker.example/x?y")
        .header("host", "evil.example")
        .body(())
        .unwrap();
    let admitted = admit(&door, req).unwrap();
    assert_eq!(admitted.request.uri(), "http://127.0.0.1:8000/x?y");
    assert_eq!(admitted.request.headers()["host"], "127.0.0.1:8000");
    assert_eq!(admitted.client_authority, "attacker.example");
}

#[test]
fn http2_host_differing_from_authority_is_refused() {
    let door = door("http://127.0.0.1:8000", false);
    let req = Request::get("http://127.0.0.1:3000/")
        .version(Version::HTTP_2)
        .header("host", "evil.example")
        .body(())
        .unwrap();
    assert_eq!(
        admit(&door, req).unwrap_err().status,
        StatusCode::BAD_REQUEST
    );
    let req = Request::get("http://LOCALHOST:80/")
        .version(Version::HTTP_2)
        .header("host", "localhost")
        .body(())
        .unwrap();
    assert!(admit(&door, req).is_ok());
}

#[test]
fn host_is_required_once_on_http11() {
    let door = door("http://127.0.0.1:8000", false);
    let missing = Request::get("/").body(()).unwrap();
    assert_eq!(
        admit(&door, missing).unwrap_err().status,
        StatusCode::BAD_REQUEST
    );
    let twice = Request::get("/")
        .header("host", "a")
        .header("host", "a")
        .body(())
        .unwrap();
    assert!(
        admit(&door, twice)
            .unwrap_err()
            .reason
            .contains("more than one")
    );
    let invalid = Request::get("/").header("host", "u@h").body(()).unwrap();
    assert!(admit(&door, invalid).is_err());
    let http10 = Request::get("http://a/")
        .version(Version::HTTP_10)
        .body(())
        .unwrap();
    assert!(admit(&door, http10).is_ok());
    let http10_no_host = Request::get("/")
        .version(Version::HTTP_10)
        .body(())
        .unwrap();
    let admitted = admit(&door, http10_no_host).unwrap();
    assert_eq!(admitted.request.uri(), "http://127.0.0.1:8000/");
}

#[test]
fn client_forwarding_fields_are_replaced() {
    let door = door("http://127.0.0.1:8000", false);
    let req = Request::get("/")
        .header("host", "localhost:3000")
        .header("forwarded", "for=1.2.3.4;host=evil")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-port", "443")
        .header("x-real-ip", "1.2.3.4")
        .body(())
        .unwrap();
    let admitted = admit(&door, req).unwrap();
    let headers = admitted.request.headers();
    assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["forwarded"], "for=192.0.2.7;proto=http");
    for gone in ["x-forwarded-host", "x-forwarded-port", "x-real-ip"] {
        assert!(!headers.contains_key(gone), "{gone}");
    }
}

// The cache sees the request as the client sent it; the proxy's own fields are set when it
// leaves for the origin, and every field they change but `Host` is one the cache is told it
// does not see (`UNSEEN_FIELDS`), so that no response varying on one is stored.
#[test]
fn origin_fields_are_set_after_the_cache_and_declared_unseen() {
    let door = door("http://127.0.0.1:8000", false);
    let client = door.peer(peer());
    let req = Request::get("/")
        .header("host", "localhost:3000")
        .header("forwarded", "for=1.2.3.4")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-port", "443")
        .header("x-real-ip", "1.2.3.4")
        .header("via", "1.1 elsewhere")
        .body(())
        .unwrap();
    let Admission::Request(admitted) = door.admit_from(req, &client).unwrap() else {
        panic!("a tunnel");
    };
    let seen = admitted.request.headers().clone();
    assert_eq!(seen["host"], "localhost:3000");
    assert_eq!(seen["x-forwarded-for"], "1.2.3.4");
    assert_eq!(seen["via"], "1.1 elsewhere");
    let mut sent = admitted.request;
    door.set_origin_fields(&mut sent, &client);
    let sent = sent.headers();
    assert_eq!(sent["host"], "127.0.0.1:8000");
    assert_eq!(sent["x-forwarded-for"], "192.0.2.7");
    assert_eq!(sent.get_all("via").iter().count(), 2);
    let changed = seen
        .keys()
        .chain(sent.keys())
        .filter(|name| {
            let before: Vec<_> = seen.get_all(*name).iter().collect();
            let after: Vec<_> = sent.get_all(*name).iter().collect();
            before != after
        })
        .filter(|name| *name != "host");
    for name in changed {
        assert!(UNSEEN_FIELDS.contains(name), "{name}");
    }
}

#[test]
fn a_trusted_proxy_keeps_the_chain() {
    let trusted = vec!["192.0.2.0/24".parse().unwrap()];
    let door = FrontDoor::new(FrontDoorConfig {
        origin: Some(parse_origin("http://o").unwrap()),
        trusted,
        ..FrontDoorConfig::default()
    });
    let req = Request::get("/")
        .header("host", "a")
        .header("x-forwarded-for", "203.0.113.9")
        .body(())
        .unwrap();
    let admitted = admit(&door, req).unwrap();
    assert_eq!(
        admitted.request.headers()["x-forwarded-for"],
        "203.0.113.9, 192.0.2.7"
    );
}

#[test]
fn preserve_host_keys_and_sends_the_client_authority() {
    let door = door("http://127.0.0.1:8000/api", true);
    let req = Request::get("/x")
        .header("host", "Shop.Example")
        .body(())
        .unwrap();
    let admitted = admit(&door, req).unwrap();
    assert_eq!(admitted.request.uri(), "http://Shop.Example/api/x");
    assert_eq!(admitted.request.headers()["host"], "Shop.Example");
    assert_eq!(
        admitted.request.headers()["x-forwarded-host"],
        "Shop.Example"
    );
}

#[test]
fn options_asterisk_keeps_its_form() {
    let door = door("http://127.0.0.1:8000/api", false);
    let req = Request::options("*").header("host", "a").body(()).unwrap();
    let admitted = admit(&door, req).unwrap();
    assert_eq!(admitted.request.uri().path(), "*");
}

#[test]
fn redirects_to_the_origin_point_back_at_the_proxy() {
    let door = door("http://127.0.0.1:8000/api", false);
    let client: Authority = "localhost:3000".parse().unwrap();
    let rewrite = |location: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::LOCATION, HeaderValue::from_str(location).unwrap());
        door.rewrite_redirects(&mut headers, &client);
        headers[header::LOCATION].to_str().unwrap().to_owned()
    };
    assert_eq!(
        rewrite("http://127.0.0.1:8000/api/products"),
        "http://localhost:3000/products"
    );
    assert_eq!(
        rewrite("HTTP://127.0.0.1:8000/api?q"),
        "http://localhost:3000/?q"
    );
    assert_eq!(
        rewrite("http://127.0.0.1:8000/apix"),
        "http://127.0.0.1:8000/apix"
    );
    assert_eq!(rewrite("/relative"), "/relative");
    assert_eq!(
        rewrite("http://other.example/api/x"),
        "http://other.example/api/x"
    );
}

#[test]
fn a_forward_proxy_keys_by_each_target() {
    let door = forward_door(Some("192.0.2.0/24"));
    let req = Request::get("http://Shop.Example:8080/x")
        .header("host", "ignored.example")
        .body(())
        .unwrap();
    let admitted = admit(&door, req).unwrap();
    assert_eq!(admitted.request.uri(), "http://Shop.Example:8080/x");
    assert_eq!(admitted.request.headers()["host"], "Shop.Example:8080");
    let origin_form = Request::get("/x").header("host", "a").body(()).unwrap();
    assert_eq!(
        admit(&door, origin_form).unwrap_err().status,
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn a_forward_proxy_serves_loopback_clients_by_default() {
    let door = forward_door(None);
    let req = || {
        Request::get("http://a/")
            .header("host", "a")
            .body(())
            .unwrap()
    };
    assert_eq!(
        admit(&door, req()).unwrap_err().status,
        StatusCode::FORBIDDEN
    );
    let local = door.admit(req(), SocketAddr::from(([127, 0, 0, 1], 1)));
    assert!(matches!(local, Ok(Admission::Request(_))));
}

#[test]
fn connect_opens_tunnels_only_to_allowed_ports() {
    let forward = forward_door(Some("0.0.0.0/0"));
    let connect = |target: &str| {
        let req = Request::connect(target)
            .header("host", target)
            .body(())
            .unwrap();
        forward.admit(req, peer())
    };
    assert!(
        matches!(connect("example.com:443"), Ok(Admission::Tunnel { target, .. }) if target == "example.com:443")
    );
    assert_eq!(
        connect("example.com:22").unwrap_err().status,
        StatusCode::FORBIDDEN
    );
    let reverse = door("http://o", false);
    let req = Request::connect("example.com:443").body(()).unwrap();
    assert_eq!(
        reverse.admit(req, peer()).unwrap_err().status,
        StatusCode::NOT_IMPLEMENTED
    );
}

#[test]
fn a_request_that_went_through_this_proxy_is_a_loop() {
    let door = forward_door(Some("0.0.0.0/0"));
    let first = admit(
        &door,
        Request::get("http://a/")
            .header("host", "a")
            .body(())
            .unwrap(),
    )
    .unwrap();
    let via = first.request.headers()["via"].clone();
    assert!(via.to_str().unwrap().starts_with("1.1 tower-cache-layer ("));
    let again = Request::get("http://a/")
        .header("host", "a")
        .header("via", via)
        .body(())
        .unwrap();
    assert_eq!(
        admit(&door, again).unwrap_err().status,
        StatusCode::LOOP_DETECTED
    );
    // Another instance's entry is no loop.
    let other = forward_door(Some("0.0.0.0/0"));
    let chained = Request::get("http://a/")
        .header("host", "a")
        .header("via", first.request.headers()["via"].clone())
        .body(())
        .unwrap();
    assert!(admit(&other, chained).is_ok());
}

/// The admin interface's purge resolves its target to the key a request for it gets.
#[test]
fn purge_targets_are_keyed_as_requests_are() {
    let plain = door("http://127.0.0.1:8000", false);
    let based = door("https://origin.example/api", false);
    let preserving = door("http://127.0.0.1:8000", true);
    let forward = forward_door(None);
    let target = |door: &FrontDoor, t: &str| door.purge_target(t).map(|uri| uri.to_string());

    assert_eq!(
        target(&plain, "/x?y=1").unwrap(),
        "http://127.0.0.1:8000/x?y=1"
    );
    // A reverse proxy keys by the origin whatever authority a client names.
    assert_eq!(
        target(&plain, "http://localhost:3000/x").unwrap(),
        "http://127.0.0.1:8000/x"
    );
    assert_eq!(
        target(&based, "/x").unwrap(),
        "https://origin.example/api/x"
    );
    // The same key as a request for the same target.
    let req = Request::get("/x?y=1")
        .header("host", "localhost:3000")
        .body(())
        .unwrap();
    let admitted = admit(&plain, req).unwrap();
    assert_eq!(
        admitted.request.uri().to_string(),
        target(&plain, "/x?y=1").unwrap()
    );

    assert_eq!(
        target(&preserving, "http://www.example/x").unwrap(),
        "http://www.example/x"
    );
    assert!(
        target(&preserving, "/x")
            .unwrap_err()
            .contains("--preserve-host")
    );
    assert_eq!(
        target(&forward, "https://www.example/x").unwrap(),
        "https://www.example/x"
    );
    assert!(target(&forward, "/x").is_err());

    for bad in [
        "",
        "x",
        "ftp://www.example/x",
        "http://user@www.example/",
        "/a b",
    ] {
        let reason = target(&plain, bad).unwrap_err();
        assert!(reason.starts_with("bad request: "), "{bad:?}: {reason}");
    }
}

// The connection's last Host is reused only when the next request sends the same value.
#[test]
fn each_request_on_a_connection_has_its_own_host() {
    let door = door("http://127.0.0.1:8000", true);
    let client = door.peer(peer());
    let with_host = |host: &str| {
        let req = Request::get("/x").header("host", host).body(()).unwrap();
        match door.admit_from(req, &client) {
            Ok(Admission::Request(admitted)) => Ok(admitted.request.uri().to_string()),
            Ok(Admission::Tunnel { .. }) => panic!("a tunnel"),
            Err(refusal) => Err(refusal.status),
        }
    };
    assert_eq!(with_host("a.example").unwrap(), "http://a.example/x");
    assert_eq!(with_host("a.example").unwrap(), "http://a.example/x");
    assert_eq!(with_host("b.example:81").unwrap(), "http://b.example:81/x");
    assert_eq!(with_host("user@b.example"), Err(StatusCode::BAD_REQUEST));
    assert_eq!(with_host("a.example").unwrap(), "http://a.example/x");
}
