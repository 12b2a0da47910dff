//! WBI request signing (`w_rid` / `wts`), as done by Bilibili web clients.
//!
//! The signature is `md5(canonical_query + mixin_key)` where the canonical query is the request
//! parameters plus `wts`, sorted by key, with `!'()*` removed from values and everything
//! percent-encoded. Clients disagree on how a space is encoded (`%20` from JavaScript's
//! `encodeURIComponent`, `+` from Python's `urlencode`), so verification accepts both.

use md5::{Digest, Md5};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Permutation applied to `img_key + sub_key` to obtain the mixin key.
pub const MIXIN_KEY_ENC_TAB: [u8; 64] = [
    46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42, 19, 29,
    28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25,
    54, 21, 56, 59, 6, 63, 57, 62, 11, 36, 20, 34, 44, 52,
];

/// Length of a mixin key built from two well-formed 32-char keys.
const MIXIN_KEY_LEN: usize = 32;

/// Characters that signing clients delete from values before encoding.
const STRIPPED_FROM_VALUES: &[char] = &['!', '\'', '(', ')', '*'];

/// Everything except the RFC 3986 unreserved set `A-Z a-z 0-9 - _ . ~`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How a space is written in the canonical query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceEncoding {
    /// `%20`, as JavaScript's `encodeURIComponent` writes it.
    Percent20,
    /// `+`, as Python's `urllib.parse.urlencode` writes it.
    Plus,
}

/// Why a signed request was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WbiError {
    #[error("w_rid or wts is missing")]
    Missing,
    #[error("w_rid does not match the request")]
    Mismatch,
}

/// Builds the mixin key from the two WBI keys.
///
/// Positions beyond the input are skipped rather than panicking, so malformed keys (e.g. from a
/// misbehaving `/nav` answer) yield a shorter key instead of crashing the caller.
pub fn mixin_key(img_key: &str, sub_key: &str) -> String {
    let raw: Vec<char> = img_key.chars().chain(sub_key.chars()).collect();
    MIXIN_KEY_ENC_TAB
        .iter()
        .filter_map(|&i| raw.get(usize::from(i)))
        .take(MIXIN_KEY_LEN)
        .collect()
}

/// Extracts a WBI key from `wbi_img.img_url` / `sub_url`: the file name without its extension.
pub fn key_from_url(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = match file.rsplit_once('.') {
        Some((stem, _ext)) => stem,
        None => file,
    };
    (!stem.is_empty()).then_some(stem)
}

/// Signs `params` at time `wts` (Unix seconds) with `%20` spaces, as the official web client does.
///
/// Any `wts` or `w_rid` already in `params` is replaced. Returns `(w_rid, query)` where `query` is
/// the complete query string to send, ending in `&w_rid=...`.
pub fn sign(params: &[(String, String)], wts: u64, mixin_key: &str) -> (String, String) {
    let wts = wts.to_string();
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "wts" && k != "w_rid")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(std::iter::once(("wts", wts.as_str())))
        .collect();
    let query = canonical_query(pairs, SpaceEncoding::Percent20);
    let w_rid = digest(&query, mixin_key);
    let full = format!("{query}&w_rid={w_rid}");
    (w_rid, full)
}

/// Computes `w_rid` over `params`, which must already contain `wts` and must not contain `w_rid`.
pub fn compute_w_rid(params: &[(String, String)], mixin_key: &str, enc: SpaceEncoding) -> String {
    let pairs = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    digest(&canonical_query(pairs, enc), mixin_key)
}

/// Checks the signature of a request given its decoded query pairs.
pub fn verify(params: &[(String, String)], mixin_key: &str) -> Result<(), WbiError> {
    let w_rid = params
        .iter()
        .find(|(k, _)| k == "w_rid")
        .map(|(_, v)| v.as_str())
        .ok_or(WbiError::Missing)?;
    if !params.iter().any(|(k, _)| k == "wts") {
        return Err(WbiError::Missing);
    }
    let signed: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "w_rid")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let matches = [SpaceEncoding::Percent20, SpaceEncoding::Plus]
        .into_iter()
        .any(|enc| {
            digest(&canonical_query(signed.clone(), enc), mixin_key).eq_ignore_ascii_case(w_rid)
        });
    if matches {
        Ok(())
    } else {
        Err(WbiError::Mismatch)
    }
}

/// Sorted, stripped, encoded `k=v&...` string that the signature covers.
fn canonical_query(mut pairs: Vec<(&str, &str)>, enc: SpaceEncoding) -> String {
    // Stable sort: with repeated keys the request order decides, which is all a client can mean.
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&encode_component(k, enc));
        out.push('=');
        let stripped: String = v
            .chars()
            .filter(|c| !STRIPPED_FROM_VALUES.contains(c))
            .collect();
        out.push_str(&encode_component(&stripped, enc));
    }
    out
}

fn encode_component(s: &str, enc: SpaceEncoding) -> String {
    let encoded = utf8_percent_encode(s, COMPONENT).to_string();
    match enc {
        SpaceEncoding::Percent20 => encoded,
        // A literal `%` is itself encoded as `%25`, so every `%20` left here came from a space.
        SpaceEncoding::Plus => encoded.replace("%20", "+"),
    }
}

fn digest(query: &str, mixin_key: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(query.as_bytes());
    md5.update(mixin_key.as_bytes());
    hex::encode(md5.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMG: &str = "7cd084941338484aae1ad9425b84077c";
    const SUB: &str = "4932caff0ff746eab6f01bf08b70ac45";
    const MIXIN: &str = "ea1db124af3c7062474693fa704f4ff8";

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn mixin_key_test_vector() {
        assert_eq!(mixin_key(IMG, SUB), MIXIN);
    }

    #[test]
    fn mixin_key_tolerates_bad_input() {
        assert_eq!(mixin_key("", ""), "");
        assert!(mixin_key("abc", "").len() <= 3);
        let unicode = mixin_key("中文键", "🙂");
        assert!(unicode.chars().count() <= 4);
        let long = "x".repeat(100);
        assert_eq!(mixin_key(&long, &long).len(), 32);
    }

    #[test]
    fn key_from_nav_url() {
        assert_eq!(
            key_from_url("https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png"),
            Some(IMG)
        );
        assert_eq!(
            key_from_url("https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png?x=1"),
            Some(SUB)
        );
        assert_eq!(key_from_url("abc"), Some("abc"));
        assert_eq!(key_from_url("https://example.com/"), None);
        assert_eq!(key_from_url(""), None);
    }

    #[test]
    fn published_example() {
        // md5("bar=514&foo=114&wts=1702204169&zab=1919810" + MIXIN), computed independently.
        let params = p(&[("foo", "114"), ("bar", "514"), ("zab", "1919810")]);
        let (w_rid, query) = sign(&params, 1702204169, MIXIN);
        assert_eq!(w_rid, "8f6f2b5b3d485fe1886cec6a0be8c5d4");
        assert_eq!(
            query,
            "bar=514&foo=114&wts=1702204169&zab=1919810&w_rid=8f6f2b5b3d485fe1886cec6a0be8c5d4"
        );
        let with_wts = p(&[
            ("foo", "114"),
            ("bar", "514"),
            ("zab", "1919810"),
            ("wts", "1702204169"),
        ]);
        assert_eq!(
            compute_w_rid(&with_wts, MIXIN, SpaceEncoding::Percent20),
            w_rid
        );
    }

    #[test]
    fn sign_then_verify_round_trip() {
        let params = p(&[
            ("mid", "1"),
            ("keyword", "hello world"),
            ("content", "你好，世界 [doge]"),
            ("odd", "a!b'c(d)e*f~g"),
        ]);
        let (w_rid, query) = sign(&params, 1_700_000_000, MIXIN);
        assert!(query.contains("keyword=hello%20world"));
        assert!(query.contains("odd=abcdef~g"));
        assert!(query.contains("%E4%BD%A0%E5%A5%BD"));

        // What a server sees after decoding the query string.
        let decoded: Vec<(String, String)> =
            serde_urlencoded::from_str(&query).expect("valid query");
        assert!(decoded.iter().any(|(k, v)| k == "w_rid" && *v == w_rid));
        assert_eq!(verify(&decoded, MIXIN), Ok(()));

        // The original values (with `!'()*`) verify too, since stripping happens on both sides.
        let mut original = params.clone();
        original.push(("wts".into(), "1700000000".into()));
        original.push(("w_rid".into(), w_rid.to_uppercase()));
        assert_eq!(verify(&original, MIXIN), Ok(()));
    }

    #[test]
    fn plus_encoded_signature_verifies() {
        let mut params = p(&[("msg", "a b c"), ("wts", "1700000000")]);
        let plus = compute_w_rid(&params, MIXIN, SpaceEncoding::Plus);
        assert_ne!(
            plus,
            compute_w_rid(&params, MIXIN, SpaceEncoding::Percent20)
        );
        // Python: md5("msg=a+b+c&wts=1700000000" + key).
        assert_eq!(plus, digest("msg=a+b+c&wts=1700000000", MIXIN));
        params.push(("w_rid".into(), plus));
        assert_eq!(verify(&params, MIXIN), Ok(()));
    }

    #[test]
    fn tampering_is_detected() {
        let params = p(&[("receiver_id", "42"), ("text", "hi")]);
        let (_, query) = sign(&params, 1_700_000_000, MIXIN);
        let mut decoded: Vec<(String, String)> =
            serde_urlencoded::from_str(&query).expect("valid query");
        for (k, v) in &mut decoded {
            if k == "receiver_id" {
                *v = "43".into();
            }
        }
        assert_eq!(verify(&decoded, MIXIN), Err(WbiError::Mismatch));

        let (_, query) = sign(&params, 1_700_000_000, MIXIN);
        let decoded: Vec<(String, String)> =
            serde_urlencoded::from_str(&query).expect("valid query");
        assert_eq!(
            verify(&decoded, "0".repeat(32).as_str()),
            Err(WbiError::Mismatch)
        );

        let mut extra = decoded.clone();
        extra.push(("injected".into(), "1".into()));
        assert_eq!(verify(&extra, MIXIN), Err(WbiError::Mismatch));
    }

    #[test]
    fn missing_fields() {
        assert_eq!(verify(&p(&[("a", "1")]), MIXIN), Err(WbiError::Missing));
        assert_eq!(
            verify(&p(&[("a", "1"), ("wts", "1")]), MIXIN),
            Err(WbiError::Missing)
        );
        assert_eq!(
            verify(&p(&[("a", "1"), ("w_rid", "00")]), MIXIN),
            Err(WbiError::Missing)
        );
    }

    #[test]
    fn sign_replaces_existing_wts() {
        let params = p(&[("wts", "1"), ("w_rid", "x"), ("a", "1")]);
        let (_, query) = sign(&params, 2, MIXIN);
        assert!(query.starts_with("a=1&wts=2&w_rid="));
    }
}
