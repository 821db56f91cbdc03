//! A raw HTTP/1.1 exchange over TCP, for requests a well-behaved client library would not
//! send (absolute-form targets, missing or repeated `Host`, broken bodies).
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy_process::Proxy;

/// A response read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Raw {
    /// The first value of `name` (lowercase), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }
}

/// Sends `request` as raw bytes on a new connection and reads until the proxy closes it
/// (requests here carry `Connection: close`, or are refused with it).
pub async fn raw(proxy: &Proxy, request: &str) -> Raw {
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the proxy answers and closes within 10 s")
        .expect("read the answer");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a complete response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    Raw {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}
