//! How long a stored entry stays of use: the `ttl` a store is given with each entry.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{ETAG, LAST_MODIFIED};

use super::{CacheOptions, ResponsePolicy};

/// How long from `now` a stored response (its header fields and policy) may still answer a
/// request; `None` while it can be revalidated, however stale.
///
/// The store may drop the entry after that: it only reclaims memory early, never changes an
/// answer.
pub(crate) fn useful_for(
    headers: &HeaderMap,
    policy: &ResponsePolicy,
    options: &CacheOptions,
    now: SystemTime,
) -> Option<Duration> {
    // RFC 9111 §4.3: a response with a validator stays useful after it goes stale, since it
    // can be revalidated; only capacity eviction removes it.
    if headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED) {
        return None;
    }
    let stale = policy
        .stale_while_revalidate
        .unwrap_or_default()
        .max(policy.stale_if_error.unwrap_or_default());
    // RFC 9111 §5.2.1.2: a request may still accept a stale response with `max-stale`, and
    // §4.2.4: a cache whose origin cannot be reached may serve it (up to
    // `max_stale_if_unreachable`); keep it that much longer, and at least an hour.
    let grace = options
        .max_stale_if_unreachable
        .max(super::DEFAULT_MAX_STALE_IF_UNREACHABLE);
    let usable = policy
        .freshness_lifetime
        .saturating_add(stale)
        .saturating_add(grace);
    Some(usable.saturating_sub(policy.age(now)))
}

/// How long from `now` an entry of several variants stays of use: as long as its
/// longest-lived variant.
pub(crate) fn entry_useful_for<'a>(
    variants: impl IntoIterator<Item = (&'a HeaderMap, &'a ResponsePolicy)>,
    options: &CacheOptions,
    now: SystemTime,
) -> Option<Duration> {
    variants
        .into_iter()
        .map(|(headers, policy)| useful_for(headers, policy, options, now))
        .try_fold(Duration::ZERO, |longest, d| d.map(|d| longest.max(d)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const HOUR: Duration = Duration::from_secs(3600);

    fn policy(lifetime: u64, age: u64) -> ResponsePolicy {
        ResponsePolicy::from_parts(
            Duration::from_secs(lifetime),
            Duration::from_secs(age),
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn a_response_with_a_validator_is_kept_until_evicted() {
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("\"a\""));
        let options = CacheOptions::default();
        assert_eq!(
            useful_for(&headers, &policy(10, 0), &options, SystemTime::UNIX_EPOCH),
            None
        );
    }

    #[test]
    fn without_a_validator_it_is_kept_for_its_remaining_life_and_the_grace() {
        let headers = HeaderMap::new();
        let options = CacheOptions::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(20);
        let stale_window = policy(60, 10).with_stale_if_error(Some(Duration::from_secs(100)));
        // 60 fresh + 100 stale-if-error + an hour, less the 30 s it is old now.
        let expected = Duration::from_secs(60 + 100 - 30) + HOUR;
        assert_eq!(
            useful_for(&headers, &stale_window, &options, now),
            Some(expected)
        );
    }

    #[test]
    fn an_entry_lives_as_long_as_its_longest_lived_variant() {
        let plain = HeaderMap::new();
        let mut validated = HeaderMap::new();
        validated.insert(
            LAST_MODIFIED,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        let options = CacheOptions::default();
        let (short, long) = (policy(10, 0), policy(100, 0));
        let now = SystemTime::UNIX_EPOCH;
        let both = [(&plain, &short), (&plain, &long)];
        assert_eq!(
            entry_useful_for(both, &options, now),
            Some(Duration::from_secs(100) + HOUR)
        );
        let one_validated = [(&plain, &short), (&validated, &long)];
        assert_eq!(entry_useful_for(one_validated, &options, now), None);
    }
}
