//! Credentials: the `SESSDATA`, `bili_jct` and `DedeUserID` cookies of a login.

use crate::{Error, Result};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub sessdata: String,
    /// The CSRF token, needed for every POST.
    pub bili_jct: Option<String>,
    /// `DedeUserID`: the caller's mid, needed to send.
    pub mid: Option<u64>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("sessdata", &"***")
            .field("bili_jct", &self.bili_jct.as_ref().map(|_| "***"))
            .field("mid", &self.mid)
            .finish()
    }
}

impl Credentials {
    pub fn new(sessdata: impl Into<String>, bili_jct: impl Into<String>, mid: u64) -> Credentials {
        Credentials {
            sessdata: sessdata.into(),
            bili_jct: Some(bili_jct.into()),
            mid: Some(mid),
        }
    }

    /// From the environment variables `SESSDATA`, `bili_jct` and `DedeUserID`.
    pub fn from_env() -> Result<Credentials> {
        let sessdata = std::env::var("SESSDATA")
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Config("SESSDATA is not set".into()))?;
        let bili_jct = std::env::var("bili_jct").ok().filter(|s| !s.is_empty());
        let mid = match std::env::var("DedeUserID") {
            Ok(v) if !v.is_empty() => Some(
                v.trim()
                    .parse()
                    .map_err(|_| Error::Config("DedeUserID is not a number".into()))?,
            ),
            _ => None,
        };
        Ok(Credentials {
            sessdata,
            bili_jct,
            mid,
        })
    }

    /// From a Netscape `cookies.txt` (as browser extensions and curl write it). Cookies of
    /// any domain are taken; the last one of a name wins.
    pub fn from_cookies_txt(text: &str) -> Result<Credentials> {
        let mut sessdata = None;
        let mut bili_jct = None;
        let mut mid = None;
        for line in text.lines() {
            // `#HttpOnly_` prefixes a real cookie line; other `#` lines are comments.
            let line = line.strip_prefix("#HttpOnly_").unwrap_or(line);
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() < 7 {
                continue;
            }
            let (name, value) = (fields[5].trim(), fields[6].trim());
            match name {
                "SESSDATA" => sessdata = Some(value.to_string()),
                "bili_jct" => bili_jct = Some(value.to_string()),
                "DedeUserID" => mid = value.parse().ok(),
                _ => {}
            }
        }
        Ok(Credentials {
            sessdata: sessdata
                .ok_or_else(|| Error::Config("no SESSDATA cookie in the cookies file".into()))?,
            bili_jct,
            mid,
        })
    }

    pub fn from_cookies_file(path: &std::path::Path) -> Result<Credentials> {
        Credentials::from_cookies_txt(&std::fs::read_to_string(path)?)
    }

    /// The `Cookie` header value.
    pub fn cookie_header(&self) -> String {
        let mut s = format!("SESSDATA={}", self.sessdata);
        if let Some(j) = &self.bili_jct {
            s.push_str(&format!("; bili_jct={j}"));
        }
        if let Some(m) = self.mid {
            s.push_str(&format!("; DedeUserID={m}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_txt() {
        let text = "# Netscape HTTP Cookie File\n\
            .bilibili.com\tTRUE\t/\tFALSE\t1800000000\tDedeUserID\t425503913\n\
            #HttpOnly_.bilibili.com\tTRUE\t/\tTRUE\t1800000000\tSESSDATA\tabc%2C123%2Cdef\n\
            .bilibili.com\tTRUE\t/\tFALSE\t1800000000\tbili_jct\t0123456789abcdef0123456789abcdef\n\
            .bilibili.com\tTRUE\t/\tFALSE\t1800000000\tbuvid3\tx\n";
        let c = Credentials::from_cookies_txt(text).unwrap();
        assert_eq!(c.sessdata, "abc%2C123%2Cdef");
        assert_eq!(
            c.bili_jct.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(c.mid, Some(425503913));
        assert_eq!(
            c.cookie_header(),
            "SESSDATA=abc%2C123%2Cdef; bili_jct=0123456789abcdef0123456789abcdef; DedeUserID=425503913"
        );
        assert!(Credentials::from_cookies_txt("# nothing\n").is_err());
        assert!(!format!("{c:?}").contains("abc"));
    }
}
