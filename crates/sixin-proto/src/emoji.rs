//! The emote catalog: bracketed names such as `[tv_doge]`, their images, and the old→new aliases
//! that apply to text sent with `new_face_version` 0 or absent.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The catalog shipped with sixin (upstream's published emote list).
const DEFAULT_CATALOG_JSON: &str = include_str!("../../../data/emoji.json");

/// Upper bound on the characters between the brackets of an emote token.
const MAX_TOKEN_CHARS: usize = 32;

/// One entry of `e_infos` in send and history answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmojiInfo {
    pub text: String,
    pub url: String,
    pub size: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gif_url: Option<String>,
}

/// One emote of the catalog file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Emote {
    /// Bracketed name, e.g. `[tv_doge]`.
    pub text: String,
    pub url: String,
    /// 1 small, 2 large.
    pub size: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gif_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Upstream's display alias (a bare word such as `笑`); unrelated to the old-name aliases,
    /// which live in the catalog's `aliases` map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl Emote {
    /// The `e_infos` entry for this emote as written `text` in a message.
    pub fn info(&self, text: &str) -> EmojiInfo {
        EmojiInfo {
            text: text.to_owned(),
            url: self.url.clone(),
            size: self.size,
            gif_url: self.gif_url.clone(),
        }
    }
}

/// On-disk shape of `data/emoji.json` and of operator extension files.
#[derive(Deserialize)]
struct CatalogFile {
    #[serde(default)]
    emotes: Vec<Emote>,
    #[serde(default)]
    aliases: HashMap<String, String>,
}

/// Emotes indexed by bracketed name, plus the old→new alias map.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    emotes: HashMap<String, Emote>,
    aliases: HashMap<String, String>,
}

impl Catalog {
    /// The embedded default catalog, parsed on first use.
    pub fn default_catalog() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            // The file is compiled in and a unit test parses it, so failure is a build defect.
            Catalog::from_json(DEFAULT_CATALOG_JSON).expect("embedded data/emoji.json is valid")
        })
    }

    /// Parses a catalog file (`emotes` array and `aliases` object; other keys are ignored).
    /// A name listed twice keeps its last entry.
    pub fn from_json(s: &str) -> Result<Catalog, serde_json::Error> {
        let file: CatalogFile = serde_json::from_str(s)?;
        let emotes = file
            .emotes
            .into_iter()
            .map(|e| (e.text.clone(), e))
            .collect();
        Ok(Catalog {
            emotes,
            aliases: file.aliases,
        })
    }

    /// Merges `other` into this catalog; its emotes and aliases replace ones of the same name.
    pub fn extend(&mut self, other: Catalog) {
        self.emotes.extend(other.emotes);
        self.aliases.extend(other.aliases);
    }

    /// The emote with exactly this bracketed name.
    pub fn lookup(&self, name: &str) -> Option<&Emote> {
        self.emotes.get(name)
    }

    /// The name an emote token stands for: the alias target for old-style text
    /// (`new_face_version` false), otherwise the name itself.
    pub fn canonical<'a>(&'a self, name: &'a str, new_face_version: bool) -> &'a str {
        if new_face_version {
            return name;
        }
        self.aliases.get(name).map_or(name, String::as_str)
    }

    /// All emotes, in no particular order.
    pub fn emotes(&self) -> impl Iterator<Item = &Emote> {
        self.emotes.values()
    }

    /// Number of emotes.
    pub fn len(&self) -> usize {
        self.emotes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.emotes.is_empty()
    }

    /// Rewrites old alias names to their current names, e.g. `[doge]` → `[tv_doge]`.
    pub fn convert_old_names<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out: Option<String> = None;
        let mut copied_to = 0;
        for (start, token) in bracket_tokens(text) {
            if let Some(new) = self.aliases.get(token) {
                let buf = out.get_or_insert_with(|| String::with_capacity(text.len() + 8));
                buf.push_str(&text[copied_to..start]);
                buf.push_str(new);
                copied_to = start + token.len();
            }
        }
        match out {
            Some(mut buf) => {
                buf.push_str(&text[copied_to..]);
                Cow::Owned(buf)
            }
            None => Cow::Borrowed(text),
        }
    }

    /// The emote a token in a message resolves to.
    fn resolve(&self, token: &str, new_face_version: bool) -> Option<&Emote> {
        // An operator alias may point at a name they have not defined; the token itself is then
        // the best remaining guess.
        self.lookup(self.canonical(token, new_face_version))
            .or_else(|| self.lookup(token))
    }

    /// `e_infos` for a text: one entry per distinct known emote token, in order of first
    /// appearance, with `text` as written in the message.
    pub fn e_infos(&self, text: &str, new_face_version: bool) -> Vec<EmojiInfo> {
        let mut seen = HashSet::new();
        bracket_tokens(text)
            .filter(|&(_, token)| seen.insert(token))
            .filter_map(|(_, token)| Some(self.resolve(token, new_face_version)?.info(token)))
            .collect()
    }
}

/// Yields `(byte offset, token)` for every `[name]` in `text`, where `name` is 1..=32 chars
/// without brackets. In `[[doge]` the inner `[doge]` is the token.
fn bracket_tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        'search: loop {
            let open = pos + text.get(pos..)?.find('[')?;
            let body = open + 1;
            let mut chars = 0;
            for (i, c) in text[body..].char_indices() {
                let at = body + i;
                match c {
                    '[' => {
                        pos = at;
                        continue 'search;
                    }
                    ']' if chars == 0 => {
                        pos = at + 1;
                        continue 'search;
                    }
                    ']' => {
                        pos = at + 1;
                        return Some((open, &text[open..pos]));
                    }
                    _ => {
                        chars += 1;
                        if chars > MAX_TOKEN_CHARS {
                            // No `[` among the chars scanned, so searching resumes here.
                            pos = at;
                            continue 'search;
                        }
                    }
                }
            }
            // Unterminated and no further `[`: nothing more to find.
            pos = text.len();
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> &'static Catalog {
        Catalog::default_catalog()
    }

    fn tokens(text: &str) -> Vec<&str> {
        bracket_tokens(text).map(|(_, t)| t).collect()
    }

    #[test]
    fn embedded_catalog_parses() {
        let c = Catalog::from_json(DEFAULT_CATALOG_JSON).expect("embedded catalog parses");
        assert_eq!(c.len(), 318);
        assert_eq!(c.aliases.len(), 50);
        // Every alias target is a real emote.
        assert!(c.aliases.values().all(|new| c.lookup(new).is_some()));
        assert_eq!(cat().len(), 318);
    }

    #[test]
    fn doge_depends_on_face_version() {
        let tv = cat().lookup("[tv_doge]").expect("tv_doge").url.clone();
        let face = cat().lookup("[doge]").expect("doge").url.clone();
        assert_ne!(tv, face);

        let old = cat().e_infos("催更[doge]", false);
        assert_eq!(
            old,
            vec![EmojiInfo {
                text: "[doge]".into(),
                url: tv,
                size: 1,
                gif_url: None
            }]
        );
        let new = cat().e_infos("催更[doge]", true);
        assert_eq!(
            new,
            vec![EmojiInfo {
                text: "[doge]".into(),
                url: face,
                size: 1,
                gif_url: None
            }]
        );

        assert_eq!(cat().canonical("[doge]", false), "[tv_doge]");
        assert_eq!(cat().canonical("[doge]", true), "[doge]");
        assert_eq!(cat().canonical("[unknown]", false), "[unknown]");
    }

    #[test]
    fn converts_old_names() {
        // `[微笑]` is an old alias in the shipped data (→ `[tv_微笑]`); `[喜欢]` is not.
        assert_eq!(
            cat().convert_old_names("hi[doge][微笑]x"),
            "hi[tv_doge][tv_微笑]x"
        );
        assert_eq!(
            cat().convert_old_names("hi[doge][喜欢]x"),
            "hi[tv_doge][喜欢]x"
        );
        assert!(matches!(
            cat().convert_old_names("no emotes [tv_doge] here"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(cat().convert_old_names(""), Cow::Borrowed(_)));
        assert_eq!(cat().convert_old_names("[[doge]]"), "[[tv_doge]]");
    }

    #[test]
    fn dedups_and_ignores_unknown() {
        let infos = cat().e_infos("[tv_doge][nope][tv_doge][微笑][tv_doge]", true);
        let texts: Vec<&str> = infos.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(texts, ["[tv_doge]", "[微笑]"]);
        assert!(cat().e_infos("[nope] [] [x]", false).is_empty());
    }

    #[test]
    fn unbalanced_brackets_are_safe() {
        assert_eq!(tokens("[[doge]"), ["[doge]"]);
        assert!(tokens("]]").is_empty());
        assert!(tokens("[").is_empty());
        assert!(tokens("[]").is_empty());
        assert_eq!(tokens("[a[b]c]"), ["[b]"]);
        assert_eq!(tokens("]x[y]["), ["[y]"]);
        assert_eq!(tokens("[🙂中文]"), ["[🙂中文]"]);
        assert_eq!(cat().e_infos("[[doge]", false).len(), 1);
        assert!(cat().e_infos("]]", false).is_empty());
        assert!(cat().e_infos("[", true).is_empty());
    }

    #[test]
    fn token_length_limit() {
        let ok = format!("[{}]", "字".repeat(32));
        let long = format!("[{}]", "字".repeat(33));
        assert_eq!(tokens(&ok), [ok.as_str()]);
        assert!(tokens(&long).is_empty());
        assert_eq!(tokens(&format!("{long}[doge]")), ["[doge]"]);
    }

    #[test]
    fn extend_overrides() {
        let mut c = cat().clone();
        let ext = Catalog::from_json(
            r#"{"emotes":[{"text":"[tv_doge]","url":"https://example.com/d.png","size":2,
                "gif_url":"https://example.com/d.gif"},
               {"text":"[新]","url":"https://example.com/n.png","size":1}],
               "aliases":{"[旧]":"[新]"}}"#,
        )
        .expect("extension parses");
        c.extend(ext);
        assert_eq!(c.len(), 319);
        let infos = c.e_infos("[doge][旧]", false);
        assert_eq!(infos[0].url, "https://example.com/d.png");
        assert_eq!(
            infos[0].gif_url.as_deref(),
            Some("https://example.com/d.gif")
        );
        assert_eq!(
            infos[1],
            EmojiInfo {
                text: "[旧]".into(),
                url: "https://example.com/n.png".into(),
                size: 1,
                gif_url: None
            }
        );
        let json = serde_json::to_string(&c.e_infos("[新]", true)).expect("serializes");
        assert_eq!(
            json,
            r#"[{"text":"[新]","url":"https://example.com/n.png","size":1}]"#
        );
    }
}
