//! Scenarios: the emoji catalog is a data file operators can extend (`emoji_file`).

use serde_json::json;

use crate::*;

const CATALOG: &str = r#"{
  "emotes": [
    {"text": "[sixin_喵]", "url": "https://i0.hdslb.com/bfs/emote/sixin-cat.png", "size": 2,
     "gif_url": "https://i0.hdslb.com/bfs/emote/sixin-cat.gif"},
    {"text": "[tv_doge]", "url": "https://i0.hdslb.com/bfs/emote/sixin-doge.png", "size": 1}
  ],
  "aliases": {"[喵]": "[sixin_喵]"}
}"#;

async fn custom_catalog(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.follow(&a, &b, true).await;
    s.follow(&b, &a, true).await;
    let v = s
        .send(
            &a,
            b.mid,
            1,
            &json!({"content": "[喵][sixin_喵][tv_doge][微笑]"}).to_string(),
        )
        .await;
    let d = ok(&v);
    assert_eq!(
        d["e_infos"],
        json!([
            {"text": "[喵]", "url": "https://i0.hdslb.com/bfs/emote/sixin-cat.png", "size": 2,
             "gif_url": "https://i0.hdslb.com/bfs/emote/sixin-cat.gif"},
            {"text": "[sixin_喵]", "url": "https://i0.hdslb.com/bfs/emote/sixin-cat.png", "size": 2,
             "gif_url": "https://i0.hdslb.com/bfs/emote/sixin-cat.gif"},
            // The operator's entry overrides the built-in one of the same name.
            {"text": "[tv_doge]", "url": "https://i0.hdslb.com/bfs/emote/sixin-doge.png", "size": 1},
            // The built-in catalog is still there ([微笑] is an old name of [tv_微笑]).
            {"text": "[微笑]", "url": "http://i0.hdslb.com/bfs/emote/70dc5c7b56f93eb61bddba11e28fb1d18fddcd4c.png", "size": 1}
        ])
    );
    // Old names of the operator's catalog are converted for web clients too.
    let page = s
        .fetch(&b, &a, &[("size", "1".into()), ("mobi_app", "web".into())])
        .await;
    let m = &ok(&page)["messages"][0];
    assert_eq!(
        m["content"],
        "{\"content\":\"[sixin_喵][sixin_喵][tv_doge][tv_微笑]\"}"
    );
}

fn write_catalog() -> tempdir::TempDir {
    let dir = tempdir::TempDir::new("emoji");
    std::fs::write(dir.0.join("emoji.json"), CATALOG).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_catalog_sqlite() {
    let dir = write_catalog();
    let file = dir.0.join("emoji.json").display().to_string();
    let s = Server::start_sqlite_with(|c| c.emoji_file = file).await;
    custom_catalog(&s).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_catalog_postgres() {
    let dir = write_catalog();
    let file = dir.0.join("emoji.json").display().to_string();
    let Some(s) = Server::start_postgres_with(|c| c.emoji_file = file).await else {
        return;
    };
    custom_catalog(&s).await;
    s.finish().await;
}
