//! Request parameters: literal field names like `msg[content]`, gathered from the query string
//! and the body, and the number formats clients send.

/// The parameters of one request, in arrival order (query first, then body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new() -> Self {
        Params(Vec::new())
    }

    /// Parses an `application/x-www-form-urlencoded` text (a query string or a form body).
    /// Bracketed names stay literal; names are trimmed because some published examples send
    /// `msg[receiver_type] =1`.
    pub fn parse_urlencoded(input: &[u8]) -> Params {
        let mut p = Params::new();
        p.append_urlencoded(input);
        p
    }

    /// Adds the pairs of an `application/x-www-form-urlencoded` text after those already here
    /// (a form body after the query string), each name and value copied once.
    pub fn append_urlencoded(&mut self, input: &[u8]) {
        for (k, v) in form_urlencoded::parse(input) {
            self.push(k, v);
        }
    }

    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let mut key: String = key.into();
        if key.trim().len() != key.len() {
            key = key.trim().to_string();
        }
        self.0.push((key, value.into()));
    }

    /// The value of `key`; when a name repeats, the last one wins (so the body overrides the
    /// query string).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, treating an empty (or blank) value as absent.
    pub fn get_nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.trim().is_empty())
    }

    /// The first of `keys` that is present and non-empty.
    pub fn first_of(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|k| self.get_nonempty(k))
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Parses an unsigned id: decimal digits only (surrounding blanks allowed), any width that fits
/// in a u64. Signs, fractions and exponents are refused.
pub fn parse_u64(s: &str) -> Option<u64> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// A signed integer in decimal (used for flags and small enums).
pub fn parse_i64(s: &str) -> Option<i64> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// A comma-separated list of ids (`uids=1,2,3`); blanks between commas are skipped.
pub fn parse_id_list(s: &str) -> Option<Vec<u64>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_u64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_bracket_names_and_last_wins() {
        let mut p = Params::parse_urlencoded(
            b"msg%5Bcontent%5D=%7B%22content%22%3A%22hi%22%7D&msg[receiver_type]+=1&a=1",
        );
        p.push("a", "2");
        assert_eq!(p.get("msg[content]"), Some("{\"content\":\"hi\"}"));
        assert_eq!(p.get("msg[receiver_type]"), Some("1"));
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("b"), None);
    }

    #[test]
    fn ids() {
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64(" 007 "), Some(7));
        assert_eq!(parse_u64("+7"), None);
        assert_eq!(parse_u64("-7"), None);
        assert_eq!(parse_u64("1e3"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_i64("-3"), Some(-3));
        assert_eq!(parse_i64("-"), None);
        assert_eq!(parse_id_list("1, 2,,3"), Some(vec![1, 2, 3]));
        assert_eq!(parse_id_list("1,x"), None);
    }
}
