//! Decodes arbitrary bytes as a stored entry, as a disk or Redis store hands it back (damaged,
//! cut short, or written by anyone who can write to the store).
//!
//! Checks: decoding never panics; an entry that decodes encodes again, and decodes to the
//! same responses; a hit can add its fields (`Age`, `X-Cache`, `Cache-Status`) to a copy of
//! every response's header map.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tower_cache_layer::store::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Some(entry) = decode(data) else {
        return;
    };
    let again = encode(&entry).expect("a decoded entry encodes");
    let back = decode(&again).expect("an encoded entry decodes");
    assert_eq!(back.variants().len(), entry.variants().len());
    for (a, b) in entry.variants().iter().zip(back.variants()) {
        assert_eq!(a.status(), b.status());
        assert_eq!(a.headers(), b.headers());
        assert_eq!(a.body().as_bytes(), b.body().as_bytes());
        assert_eq!(a.policy(), b.policy());
        let mut answer = a.headers().clone();
        for name in ["age", "x-cache", "cache-status"] {
            answer.insert(name, HeaderValue::from_static("1"));
        }
    }
});
