//! `/link_setting/v1/link_setting/*`: do-not-disturb and push settings.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use sixin_proto::params::parse_id_list;
use sixin_proto::{Empty, IsLimit, MsgDnd, SessionSettings, SysSetting};

use super::{Api, ApiReq, AppState};
use crate::domain::DomainError;

const BASE: &str = "/link_setting/v1/link_setting";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{BASE}/set_msg_dnd"), post(set_msg_dnd))
        .route(&format!("{BASE}/get_msg_dnd"), get(get_msg_dnd))
        .route(&format!("{BASE}/set_push_ss"), post(set_push_ss))
        .route(&format!("{BASE}/get_session_ss"), get(get_session_ss))
        .route(&format!("{BASE}/is_limit"), get(is_limit))
        .route(&format!("{BASE}/get_sys_setting"), get(get_sys_setting))
}

fn setting01(req: &ApiReq) -> Result<bool, DomainError> {
    match req.small("setting")? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DomainError::InvalidArgument("setting")),
    }
}

async fn set_msg_dnd(State(svc): State<AppState>, req: ApiReq) -> Api<Empty> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let on = setting01(&req)?;
        let (session_type, id) = match (req.opt_u64("dnd_uid")?, req.opt_u64("dnd_group_id")?) {
            (Some(uid), _) => (1, uid),
            (None, Some(gid)) => (2, gid),
            (None, None) => return Err(DomainError::BadRequest("dnd_uid")),
        };
        svc.set_dnd(&caller, session_type, id, on).await?;
        Ok(Empty {})
    }
    .await)
}

fn id_list(req: &ApiReq, names: [&'static str; 2]) -> Result<Vec<u64>, DomainError> {
    match req.params.first_of(&names) {
        None => Ok(Vec::new()),
        Some(v) => {
            let ids = parse_id_list(v).ok_or(DomainError::BadRequest(names[0]))?;
            if ids.len() > 200 {
                return Err(DomainError::InvalidArgument(names[0]));
            }
            Ok(ids)
        }
    }
}

async fn get_msg_dnd(State(svc): State<AppState>, req: ApiReq) -> Api<MsgDnd> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let uids = id_list(&req, ["uids_str", "uids"])?;
        let gids = id_list(&req, ["group_ids_str", "group_ids"])?;
        svc.get_dnd(&caller, &uids, &gids).await
    }
    .await)
}

async fn set_push_ss(State(svc): State<AppState>, req: ApiReq) -> Api<Empty> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let talker = req.u64("talker_uid")?;
        let setting = req.small("setting")?;
        if setting > 1 {
            return Err(DomainError::InvalidArgument("setting"));
        }
        svc.set_push_setting(&caller, talker, setting).await?;
        Ok(Empty {})
    }
    .await)
}

async fn get_session_ss(State(svc): State<AppState>, req: ApiReq) -> Api<SessionSettings> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let talker = req.u64("talker_uid")?;
        svc.session_settings(&caller, talker).await
    }
    .await)
}

async fn is_limit(State(svc): State<AppState>, req: ApiReq) -> Api<IsLimit> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let uid = req.u64("uid")?;
        // `type` is accepted (clients send it) but does not change the answer.
        req.opt_i64("type")?;
        Ok(IsLimit {
            is_limit: u8::from(svc.is_limited(&caller, uid).await?),
            report_limit: 0,
        })
    }
    .await)
}

async fn get_sys_setting(State(svc): State<AppState>, req: ApiReq) -> Api<SysSetting> {
    Api(async {
        req.caller(&svc).await?;
        Ok(svc.sys_setting(req.web()))
    }
    .await)
}
