//! The admin API under `/admin/v1/`: JSON in, JSON out, `Authorization: Bearer <token>`.
//! With no token configured it answers 403 to everything.
// Admin handlers build their error responses early and pass them up as `Err`.
#![allow(clippy::result_large_err)]

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{json_response, AppState};
use crate::domain::{system, DomainError, NewUserRequest, RelationPatch, Service};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", post(create_user))
        .route("/users/{mid}", get(get_user))
        .route(
            "/users/{mid}/logins",
            post(create_login).delete(revoke_logins),
        )
        .route("/users/{mid}/settings", get(get_settings).put(put_settings))
        .route("/relations", put(set_relation))
        .route("/maintenance", get(get_maintenance).put(put_maintenance))
        .route("/messages/system", post(system_message))
        .route("/clock", get(get_clock).post(set_clock))
        .route("/groups", post(create_group))
        .route("/groups/{id}", get(get_group))
        .route("/groups/{id}/members", post(add_member))
        .route(
            "/groups/{id}/members/{mid}",
            axum::routing::delete(remove_member),
        )
        // freeze or dissolve
        .route("/groups/{id}/{change}", post(change_group))
}

/// The JSON answer of an admin request: the value, or the error response already made.
fn answer<T: serde::Serialize>(r: Result<T, Response>) -> Response {
    match r {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(resp) => resp,
    }
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    json_response(status, &json!({"error": msg.into()}))
}

fn domain_err(e: DomainError) -> Response {
    match e {
        DomainError::BadRequest(m) => err(StatusCode::BAD_REQUEST, m),
        DomainError::NotFound => err(StatusCode::NOT_FOUND, "no such user"),
        DomainError::Conflict(m) => err(StatusCode::CONFLICT, m),
        e => {
            tracing::error!(error = %e, "admin request failed");
            err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// Checks the bearer token in constant time.
fn authorize(svc: &Service, headers: &HeaderMap) -> Result<(), Response> {
    let expected = svc.config.admin_token.as_bytes();
    if expected.is_empty() {
        return Err(err(
            StatusCode::FORBIDDEN,
            "the admin API is disabled (no admin_token configured)",
        ));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .as_bytes();
    let same = given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(err(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))
    }
}

/// A JSON body, with malformed input answered as 400 in the admin API's own shape.
fn body<T: for<'de> Deserialize<'de>>(raw: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(raw)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

fn mid_of(raw: &str) -> Result<u64, Response> {
    sixin_proto::params::parse_u64(raw)
        .ok_or_else(|| err(StatusCode::BAD_REQUEST, "mid must be an unsigned integer"))
}

async fn create_user(
    State(svc): State<AppState>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let r = async {
        authorize(&svc, &headers)?;
        let req: NewUserRequest = body(&raw)?;
        svc.create_user(req).await.map_err(domain_err)
    }
    .await;
    answer(r)
}

async fn get_user(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path(mid): Path<String>,
) -> Response {
    let r = async {
        authorize(&svc, &headers)?;
        let mid = mid_of(&mid)?;
        let user = svc
            .store
            .user(mid)
            .await
            .map_err(|e| domain_err(e.into()))?
            .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such user"))?;
        Ok::<_, Response>(json!({
            "mid": user.mid, "name": user.name, "face": user.face, "sign": user.sign,
            "level": user.level, "system_msg_type": user.system_msg_type,
        }))
    }
    .await;
    answer(r)
}

async fn create_login(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path(mid): Path<String>,
) -> Response {
    let r = async {
        authorize(&svc, &headers)?;
        svc.create_login(mid_of(&mid)?).await.map_err(domain_err)
    }
    .await;
    answer(r)
}

async fn revoke_logins(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path(mid): Path<String>,
) -> Response {
    let r = async {
        authorize(&svc, &headers)?;
        svc.revoke_logins(mid_of(&mid)?).await.map_err(domain_err)
    }
    .await;
    answer(r.map(|n| json!({ "revoked": n })))
}

#[derive(Deserialize)]
struct RelationBody {
    mid: u64,
    fid: u64,
    #[serde(flatten)]
    patch: RelationPatch,
}

async fn set_relation(
    State(svc): State<AppState>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let r = async {
        authorize(&svc, &headers)?;
        let b: RelationBody = body(&raw)?;
        svc.patch_relation(b.mid, b.fid, b.patch)
            .await
            .map_err(domain_err)
            .map(|rel| (b.mid, b.fid, rel))
    }
    .await;
    match r {
        Ok((mid, fid, rel)) => json_response(
            StatusCode::OK,
            &json!({"mid": mid, "fid": fid, "follow": rel.follow, "special": rel.special, "block": rel.block}),
        ),
        Err(resp) => resp,
    }
}

#[derive(Deserialize)]
struct SystemMessageBody {
    /// The system account, by `system_msg_type` (1, 5, 7, 8, 9) or by mid.
    system_msg_type: Option<u8>,
    from: Option<u64>,
    to: u64,
    msg_type: u32,
    /// The content object (any JSON); stored as its JSON text.
    content: serde_json::Value,
    #[serde(default)]
    notify_code: String,
    msg_source: Option<u32>,
}

async fn system_message(
    State(svc): State<AppState>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let r = async {
        authorize(&svc, &headers)?;
        let b: SystemMessageBody = body(&raw)?;
        let from = match (b.from, b.system_msg_type) {
            (Some(m), _) => m,
            (None, Some(t)) => system::by_type(t)
                .map(|a| a.mid)
                .ok_or_else(|| err(StatusCode::BAD_REQUEST, "unknown system_msg_type"))?,
            (None, None) => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "from or system_msg_type is required",
                ))
            }
        };
        if !matches!(b.msg_type, 10 | 11 | 12 | 13 | 16) {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "msg_type must be 10, 11, 12, 13 or 16",
            ));
        }
        let source = b
            .msg_source
            .unwrap_or(crate::domain::relations::SOURCE_PUSH);
        if !matches!(source, 5 | 6) {
            return Err(err(StatusCode::BAD_REQUEST, "msg_source must be 5 or 6"));
        }
        let content = match b.content {
            serde_json::Value::String(s) => s,
            v => v.to_string(),
        };
        svc.inject_system_message(from, b.to, b.msg_type, content, b.notify_code, source)
            .await
            .map_err(domain_err)
    }
    .await;
    answer(r.map(|m| m.msg))
}

async fn get_clock(State(svc): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(resp) = authorize(&svc, &headers) {
        return resp;
    }
    json_response(
        StatusCode::OK,
        &json!({"now_ms": svc.clock.now_ms(), "test_mode": svc.config.test_mode}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    set_ms: Option<i64>,
    advance_ms: Option<i64>,
}

async fn set_clock(
    State(svc): State<AppState>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let r =
        async {
            authorize(&svc, &headers)?;
            if !svc.config.test_mode {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    "the clock can only be changed in test mode",
                ));
            }
            let b: ClockBody = body(&raw)?;
            let now = svc.clock.now_ms();
            // msg_keys hold 41 bits of milliseconds: the clock stays where they can express it.
            let in_range = |ms: i64| (0..crate::ids::MAX_KEY_MS).contains(&ms);
            match (b.set_ms, b.advance_ms) {
                (Some(ms), None) if in_range(ms) => svc.clock.set_ms(ms),
                (None, Some(ms)) if now.checked_add(ms).is_some_and(in_range) => {
                    svc.clock.advance_ms(ms)
                }
                _ => return Err(err(
                    StatusCode::BAD_REQUEST,
                    "give exactly one of set_ms or advance_ms, landing between 1970 and 2039-09-07",
                )),
            }
            Ok(())
        }
        .await;
    match r {
        Ok(()) => json_response(StatusCode::OK, &json!({"now_ms": svc.clock.now_ms()})),
        Err(resp) => resp,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    privacy: Option<u8>,
    flagged: Option<bool>,
    follow_reply: Option<String>,
    message_reply: Option<String>,
    keyword_replies: Option<Vec<crate::store::KeywordReply>>,
}

async fn settings_json(svc: &Service, mid: u64) -> Result<serde_json::Value, Response> {
    let user = svc
        .store
        .user(mid)
        .await
        .map_err(|e| domain_err(e.into()))?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such user"))?;
    let (privacy, r) = svc.settings_of(mid).await.map_err(domain_err)?;
    Ok(json!({
        "mid": mid, "privacy": privacy, "flagged": user.flagged,
        "follow_reply": r.follow_reply, "message_reply": r.message_reply,
        "keyword_replies": r.keyword_replies,
    }))
}

async fn get_settings(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path(mid): Path<String>,
) -> Response {
    let r = async {
        authorize(&svc, &headers)?;
        settings_json(&svc, mid_of(&mid)?).await
    }
    .await;
    answer(r)
}

/// Privacy, the spam flag and auto-replies of a user; absent fields stay as they are.
async fn put_settings(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path(mid): Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    let r = async {
        authorize(&svc, &headers)?;
        let mid = mid_of(&mid)?;
        let b: SettingsBody = body(&raw)?;
        let replies =
            if b.follow_reply.is_some() || b.message_reply.is_some() || b.keyword_replies.is_some()
            {
                let (_, mut r) = svc.settings_of(mid).await.map_err(domain_err)?;
                if let Some(v) = b.follow_reply {
                    r.follow_reply = v;
                }
                if let Some(v) = b.message_reply {
                    r.message_reply = v;
                }
                if let Some(v) = b.keyword_replies {
                    r.keyword_replies = v;
                }
                Some(r)
            } else {
                None
            };
        svc.update_settings(mid, b.privacy, replies)
            .await
            .map_err(|e| match e {
                DomainError::InvalidArgument(what) => {
                    err(StatusCode::BAD_REQUEST, format!("invalid {what}"))
                }
                e => domain_err(e),
            })?;
        if let Some(f) = b.flagged {
            svc.set_flagged(mid, f).await.map_err(domain_err)?;
        }
        settings_json(&svc, mid).await
    }
    .await;
    answer(r)
}

async fn get_maintenance(State(svc): State<AppState>, headers: HeaderMap) -> Response {
    let r = async {
        authorize(&svc, &headers)?;
        svc.in_maintenance().await.map_err(domain_err)
    }
    .await;
    answer(r.map(|on| json!({ "maintenance": on })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceBody {
    maintenance: bool,
}

/// Switches maintenance (read-only) mode for every process sharing the database. With
/// `maintenance = true` in the configuration it stays on regardless.
async fn put_maintenance(
    State(svc): State<AppState>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    let r = async {
        authorize(&svc, &headers)?;
        let b: MaintenanceBody = body(&raw)?;
        svc.set_maintenance(b.maintenance)
            .await
            .map_err(domain_err)?;
        svc.in_maintenance().await.map_err(domain_err)
    }
    .await;
    answer(r.map(|on| json!({ "maintenance": on })))
}

fn group_err(e: DomainError) -> Response {
    match e {
        DomainError::NotFound => err(StatusCode::NOT_FOUND, "no such group, user or member"),
        e => domain_err(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    owner: u64,
    name: String,
    #[serde(default)]
    cover: String,
    #[serde(default)]
    group_type: u8,
}

async fn create_group(
    State(svc): State<AppState>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Response {
    answer(
        async {
            authorize(&svc, &headers)?;
            let b: GroupBody = body(&raw)?;
            svc.create_group(b.owner, &b.name, &b.cover, b.group_type)
                .await
                .map_err(group_err)
        }
        .await,
    )
}

async fn get_group(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(
        async {
            authorize(&svc, &headers)?;
            svc.group_info(mid_of(&id)?).await.map_err(group_err)
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    mid: u64,
}

async fn add_member(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    answer(
        async {
            authorize(&svc, &headers)?;
            let b: MemberBody = body(&raw)?;
            svc.join_group(mid_of(&id)?, b.mid).await.map_err(group_err)
        }
        .await,
    )
}

async fn remove_member(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
) -> Response {
    answer(
        async {
            authorize(&svc, &headers)?;
            svc.leave_group(mid_of(&id)?, mid_of(&mid)?)
                .await
                .map_err(group_err)
        }
        .await,
    )
}

/// `POST /groups/{id}/freeze` and `POST /groups/{id}/dissolve`.
async fn change_group(
    State(svc): State<AppState>,
    headers: HeaderMap,
    Path((id, change)): Path<(String, String)>,
) -> Response {
    answer(
        async {
            authorize(&svc, &headers)?;
            let id = mid_of(&id)?;
            match change.as_str() {
                "freeze" => svc.freeze_group(id).await,
                "dissolve" => svc.dissolve_group(id).await,
                _ => return Err(err(StatusCode::NOT_FOUND, "no such group operation")),
            }
            .map_err(group_err)
        }
        .await,
    )
}
