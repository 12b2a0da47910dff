//! sixin's own user-facing extensions under `/sixin/v1/`: web login and logout, the
//! caller's settings (privacy and auto-replies), and the stream of the caller's new messages.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::{Api, ApiReq, AppState};
use crate::domain::DomainError;
use crate::store::{AutoReplies, KeywordReply};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sixin/v1/settings", get(get_settings).post(set_settings))
        .route("/sixin/v1/login", axum::routing::post(login))
        .route("/sixin/v1/logout", axum::routing::post(logout))
        .route("/sixin/v1/events", get(events))
}

/// `GET /sixin/v1/events`: the caller's new messages as server-sent events (see
/// [`crate::domain::events`]): an `open` event whose id is the key the stream starts after,
/// then one `message` event per message (`id` its `msg_key`, `data` a
/// [`crate::domain::events::MessageEvent`]), from now on, or resumed from the `msg_key` in
/// `Last-Event-ID` (or the `last_event_id` parameter). A comment every 15 s keeps idle
/// connections open.
async fn events(
    State(svc): State<AppState>,
    headers: axum::http::HeaderMap,
    req: ApiReq,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let caller = match req.caller(&svc).await {
        Ok(c) => c,
        Err(e) => return Api::<()>(Err(e)).into_response(),
    };
    // The header as sent (a value that is not text is no key either), or the parameter.
    let named = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().unwrap_or_default()),
        None => req.params.get_nonempty("last_event_id"),
    };
    let resume = match named.map(super::parse_u64) {
        Some(None) => {
            return Api::<()>(Err(DomainError::BadRequest("last_event_id"))).into_response()
        }
        Some(key) => key,
        None => None,
    };
    let sessdata = req.cookie("SESSDATA").map(str::to_string);
    let stream = svc.open_events(caller.mid, sessdata, resume);
    // First an `open` event whose id is where the stream starts: a client that reconnects
    // before any message came resumes from there.
    let open = axum::response::sse::Event::default()
        .event("open")
        .id(stream.start_key().to_string())
        .data("{}");
    let messages = futures_util::stream::unfold(stream, |mut f| async move {
        let e = f.next().await?;
        let event = axum::response::sse::Event::default()
            .event("message")
            .id(e.msg.msg_key.to_string())
            .data(serde_json::to_string(&e).unwrap_or_default());
        Some((Ok::<_, std::convert::Infallible>(event), f))
    });
    let events = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok(open) }),
        messages,
    );
    axum::response::sse::Sse::new(events)
        .keep_alive(axum::response::sse::KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// `data` of `/sixin/v1/settings`.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// 0: anyone may message me; 1: only people I follow.
    pub privacy: u8,
    pub follow_reply: String,
    pub message_reply: String,
    pub keyword_replies: Vec<KeywordReply>,
}

async fn get_settings(State(svc): State<AppState>, req: ApiReq) -> Api<Settings> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let (privacy, r) = svc.settings_of(caller.mid).await?;
        Ok(Settings {
            privacy,
            follow_reply: r.follow_reply,
            message_reply: r.message_reply,
            keyword_replies: r.keyword_replies,
        })
    }
    .await)
}

/// Form fields `privacy` (0/1), `follow_reply`, `message_reply`, `keyword_replies` (a JSON
/// array of `{"keyword","reply"}`); absent fields stay as they are.
async fn set_settings(State(svc): State<AppState>, req: ApiReq) -> Api<Settings> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let privacy = match req.opt_i64("privacy")? {
            None => None,
            Some(p @ 0..=1) => Some(p as u8),
            Some(_) => return Err(DomainError::InvalidArgument("privacy")),
        };
        let (_, mut replies) = svc.settings_of(caller.mid).await?;
        let mut changed = false;
        if let Some(v) = req.params.get("follow_reply") {
            replies.follow_reply = v.to_string();
            changed = true;
        }
        if let Some(v) = req.params.get("message_reply") {
            replies.message_reply = v.to_string();
            changed = true;
        }
        if let Some(v) = req.params.get("keyword_replies") {
            replies.keyword_replies = if v.trim().is_empty() {
                Vec::new()
            } else {
                serde_json::from_str(v).map_err(|_| DomainError::BadRequest("keyword_replies"))?
            };
            changed = true;
        }
        svc.update_settings(caller.mid, privacy, changed.then_some(replies))
            .await?;
        let (privacy, r): (u8, AutoReplies) = svc.settings_of(caller.mid).await?;
        Ok(Settings {
            privacy,
            follow_reply: r.follow_reply,
            message_reply: r.message_reply,
            keyword_replies: r.keyword_replies,
        })
    }
    .await)
}

/// Form fields `mid` and `password`. Answers the login like `sixin user login` prints it and
/// sets the three cookies; a wrong mid or password is -101.
async fn login(State(svc): State<AppState>, req: ApiReq) -> axum::response::Response {
    use axum::response::IntoResponse;
    let r = async {
        let mid = req.u64("mid")?;
        let password = req
            .params
            .get("password")
            .ok_or(DomainError::BadRequest("password"))?;
        svc.login_with_password(mid, password).await
    }
    .await;
    let login = match r {
        Ok(l) => l,
        Err(e) => return super::error_response(&e),
    };
    let max_age = svc.config.login_ttl_days.max(1) * 86_400;
    let cookie = |name: &str, value: &str, http_only: bool| {
        format!(
            "{name}={value}; Path=/; Max-Age={max_age}; SameSite=Lax{}",
            if http_only { "; HttpOnly" } else { "" }
        )
    };
    let headers = [
        cookie("SESSDATA", &login.sessdata, true),
        cookie("bili_jct", &login.bili_jct, false),
        cookie("DedeUserID", &login.dede_user_id, false),
    ];
    let mut resp = Api(Ok(login)).into_response();
    for h in headers {
        if let Ok(v) = axum::http::HeaderValue::from_str(&h) {
            resp.headers_mut().append(axum::http::header::SET_COOKIE, v);
        }
    }
    resp
}

/// Ends the caller's login (the one its `SESSDATA` names).
async fn logout(State(svc): State<AppState>, req: ApiReq) -> Api<sixin_proto::Empty> {
    Api(async {
        req.caller(&svc).await?;
        let sessdata = req.cookie("SESSDATA").ok_or(DomainError::NotLoggedIn)?;
        svc.logout(sessdata).await?;
        Ok(sixin_proto::Empty {})
    }
    .await)
}
