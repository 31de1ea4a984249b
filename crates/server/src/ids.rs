//! Member and cluster ids, derived exactly as etcd derives them, so a cluster bootstrapped
//! with the same flags gets the same ids as etcd would give it (operators and tests
//! recognise `8e9e05c52164694d` as the default member).
//!
//! - member id: the first 8 bytes (big-endian) of SHA-1 over the member's sorted peer
//!   URLs joined without separator, then the cluster token, then (for members added at
//!   run time) the Unix time in seconds as decimal text;
//! - cluster id: the first 8 bytes of SHA-1 over the sorted member ids, each 8 bytes
//!   big-endian.

use sha1::{Digest, Sha1};
use url::Url;

/// A URL as etcd prints it: no trailing `/` for an empty path.
pub fn url_string(url: &Url) -> String {
    let s = url.as_str();
    if url.path() == "/" && url.query().is_none() && url.fragment().is_none() {
        s.strip_suffix('/').unwrap_or(s).to_string()
    } else {
        s.to_string()
    }
}

/// The id of a member with these peer URLs in the cluster named by `token`;
/// `added_at_unix_secs` is given for members added to a running cluster.
pub fn member_id(peer_urls: &[Url], token: &str, added_at_unix_secs: Option<i64>) -> u64 {
    let mut urls: Vec<String> = peer_urls.iter().map(url_string).collect();
    urls.sort();
    let mut hasher = Sha1::new();
    for url in &urls {
        hasher.update(url.as_bytes());
    }
    hasher.update(token.as_bytes());
    if let Some(secs) = added_at_unix_secs {
        hasher.update(secs.to_string().as_bytes());
    }
    first_u64(&hasher.finalize())
}

/// The id of a cluster with these members.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut hasher = Sha1::new();
    for id in ids {
        hasher.update(id.to_be_bytes());
    }
    first_u64(&hasher.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn default_member_gets_etcds_well_known_ids() {
        // `etcd` with no flags logs member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let id = member_id(&[url("http://localhost:2380")], "etcd-cluster", None);
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }

    #[test]
    fn member_id_ignores_url_order_and_depends_on_token_and_time() {
        let a = url("http://10.0.0.1:2380");
        let b = url("http://10.0.0.2:2380");
        let ab = member_id(&[a.clone(), b.clone()], "t", None);
        assert_eq!(ab, member_id(&[b, a.clone()], "t", None));
        let only_a = std::slice::from_ref(&a);
        assert_ne!(ab, member_id(only_a, "t", None));
        assert_ne!(member_id(only_a, "t", None), member_id(only_a, "u", None));
        assert_ne!(
            member_id(only_a, "t", None),
            member_id(only_a, "t", Some(1_700_000_000))
        );
    }

    #[test]
    fn cluster_id_ignores_member_order() {
        assert_eq!(cluster_id(&[1, 2, 3]), cluster_id(&[3, 1, 2]));
        assert_ne!(cluster_id(&[1, 2]), cluster_id(&[1, 2, 3]));
    }

    #[test]
    fn urls_print_without_trailing_slash() {
        assert_eq!(
            url_string(&url("http://localhost:2379")),
            "http://localhost:2379"
        );
        assert_eq!(
            url_string(&url("https://[::1]:2379/")),
            "https://[::1]:2379"
        );
    }
}
