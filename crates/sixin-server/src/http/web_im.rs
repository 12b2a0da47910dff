//! `/web_im/v1/web_im/send_msg`.

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use sixin_proto::params::parse_u64;
use sixin_proto::SendResult;

use super::{Api, ApiReq, AppState};
use crate::domain::{msg_source_of, DomainError, SendRequest};

pub fn routes() -> Router<AppState> {
    Router::new().route("/web_im/v1/web_im/send_msg", post(send_msg))
}

async fn send_msg(State(svc): State<AppState>, req: ApiReq) -> Api<SendResult> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let content = req
            .params
            .get("msg[content]")
            .ok_or(DomainError::BadRequest("msg[content]"))?
            .to_string();
        let dev_id = req
            .params
            .get_nonempty("msg[dev_id]")
            .ok_or(DomainError::BadRequest("msg[dev_id]"))?
            .trim()
            .to_string();
        // Control characters (a NUL can't even be stored in PostgreSQL text) are malformed.
        if dev_id.len() > 64 || dev_id.chars().any(char::is_control) {
            return Err(DomainError::BadRequest("msg[dev_id]"));
        }
        // Seconds or milliseconds; only checked for form, the stored time is the server's.
        req.u64("msg[timestamp]")?;
        let new_face_version = match req.params.get_nonempty("msg[new_face_version]") {
            None => 0,
            Some(v) => match parse_u64(v) {
                Some(0) => 0,
                Some(1) => 1,
                _ => return Err(DomainError::BadRequest("msg[new_face_version]")),
            },
        };
        let r = SendRequest {
            sender_uid: req.u64("msg[sender_uid]")?,
            receiver_id: req.u64("msg[receiver_id]")?,
            receiver_type: req.u64("msg[receiver_type]")?,
            msg_type: req.u64("msg[msg_type]")?,
            content,
            dev_id,
            new_face_version,
            msg_source: msg_source_of(req.params.get("mobi_app")),
            at_uids: at_uids(&req)?,
        };
        svc.send(&caller, r).await
    }
    .await)
}

/// Mentions as clients send them: `msg[at_uids]` holding a JSON array (`[1,2]`) or a comma
/// list (`1,2`), or repeated `msg[at_uids][]` / `msg[at_uids][0]` fields. `0` means nobody.
fn at_uids(req: &ApiReq) -> Result<Option<Vec<u64>>, DomainError> {
    let bad = || DomainError::BadRequest("msg[at_uids]");
    let mut out: Vec<u64> = Vec::new();
    for (k, v) in req.params.pairs() {
        if k != "msg[at_uids]" && !k.starts_with("msg[at_uids][") {
            continue;
        }
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        let ids: Vec<u64> = if v.starts_with('[') {
            let values: Vec<serde_json::Value> = serde_json::from_str(v).map_err(|_| bad())?;
            values
                .iter()
                .map(|x| match x {
                    serde_json::Value::Number(n) => n.as_u64(),
                    serde_json::Value::String(s) => parse_u64(s),
                    _ => None,
                })
                .collect::<Option<_>>()
                .ok_or_else(bad)?
        } else {
            sixin_proto::params::parse_id_list(v).ok_or_else(bad)?
        };
        out.extend(ids);
    }
    // Nobody (0) and repeats are left out; the first mention of each member keeps its place.
    let mut seen = std::collections::HashSet::new();
    out.retain(|m| *m != 0 && seen.insert(*m));
    if out.len() > 100 {
        return Err(DomainError::InvalidArgument("msg[at_uids]"));
    }
    Ok((!out.is_empty()).then_some(out))
}
