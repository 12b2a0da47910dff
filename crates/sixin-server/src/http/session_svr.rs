//! `/session_svr/v1/session_svr/*`: unread counts, session lists, read marks.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use sixin_proto::{Empty, GroupUnread};

use super::{Api, ApiReq, AppState, Page};
use crate::domain::{DomainError, SessionsRequest, UnreadRequest};

const BASE: &str = "/session_svr/v1/session_svr";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{BASE}/single_unread"), get(single_unread))
        .route(&format!("{BASE}/my_group_unread"), get(my_group_unread))
        .route(&format!("{BASE}/get_sessions"), get(get_sessions))
        .route(&format!("{BASE}/new_sessions"), get(new_sessions))
        .route(&format!("{BASE}/session_detail"), get(session_detail))
        .route(&format!("{BASE}/update_ack"), post(update_ack))
        .route(&format!("{BASE}/remove_session"), post(remove_session))
        .route(&format!("{BASE}/set_top"), post(set_top))
        .route(&format!("{BASE}/update_intercept"), post(update_intercept))
        .route(
            &format!("{BASE}/batch_update_dustbin_ack"),
            post(batch_update_dustbin_ack),
        )
        .route(&format!("{BASE}/batch_rm_dustbin"), post(batch_rm_dustbin))
}

async fn single_unread(State(svc): State<AppState>, req: ApiReq) -> Api<sixin_proto::SingleUnread> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let unread_type = match req.opt_i64("unread_type")? {
            None => 0,
            Some(t) => u8::try_from(t).map_err(|_| DomainError::InvalidArgument("unread_type"))?,
        };
        let r = UnreadRequest {
            unread_type,
            show_unfollow_list: req.flag("show_unfollow_list")?,
            show_dustbin: req.flag("show_dustbin")?,
        };
        svc.single_unread(&caller, r).await
    }
    .await)
}

async fn my_group_unread(State(svc): State<AppState>, req: ApiReq) -> Api<GroupUnread> {
    Api(async {
        let caller = req.caller(&svc).await?;
        Ok(GroupUnread {
            unread_count: svc.group_unread(caller.mid).await?,
        })
    }
    .await)
}

async fn get_sessions(State(svc): State<AppState>, req: ApiReq) -> Page<sixin_proto::SessionList> {
    Page(
        async {
            let caller = req.caller(&svc).await?;
            let r = SessionsRequest {
                session_type: req.small("session_type")?,
                group_fold: req.flag("group_fold")?,
                unfollow_fold: req.flag("unfollow_fold")?,
                sort_rule: req.opt_i64("sort_rule")?.unwrap_or(0),
                begin_ts: req.ts("begin_ts")?,
                end_ts: req.ts("end_ts")?,
                size: req.size("size", 20)?,
                web: req.web(),
            };
            svc.get_sessions(&caller, r).await
        }
        .await,
    )
}

async fn new_sessions(State(svc): State<AppState>, req: ApiReq) -> Page<sixin_proto::SessionList> {
    Page(
        async {
            let caller = req.caller(&svc).await?;
            let begin = req.ts("begin_ts")?.unwrap_or(0);
            svc.new_sessions(&caller, begin, req.size("size", 20)?, req.web())
                .await
        }
        .await,
    )
}

async fn session_detail(State(svc): State<AppState>, req: ApiReq) -> Page<sixin_proto::Session> {
    Page(
        async {
            let caller = req.caller(&svc).await?;
            let talker = req.u64("talker_id")?;
            let st = req.small("session_type")?;
            svc.session_detail(&caller, talker, st, req.web()).await
        }
        .await,
    )
}

async fn update_ack(State(svc): State<AppState>, req: ApiReq) -> Api<Empty> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let talker = req.u64("talker_id")?;
        let st = req.small("session_type")?;
        let ack = req.opt_u64("ack_seqno")?;
        svc.update_ack(&caller, talker, st, ack).await?;
        Ok(Empty {})
    }
    .await)
}

async fn remove_session(State(svc): State<AppState>, req: ApiReq) -> Api<Empty> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let talker = req.u64("talker_id")?;
        let st = req.small("session_type")?;
        svc.remove_session(&caller, talker, st).await?;
        Ok(Empty {})
    }
    .await)
}

async fn set_top(State(svc): State<AppState>, req: ApiReq) -> Api<Empty> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let talker = req.u64("talker_id")?;
        let st = req.small("session_type")?;
        let pin = match req.small("op_type")? {
            0 => true,
            1 => false,
            _ => return Err(DomainError::InvalidArgument("op_type")),
        };
        svc.set_top(&caller, talker, st, pin).await?;
        Ok(Empty {})
    }
    .await)
}

async fn update_intercept(State(svc): State<AppState>, req: ApiReq) -> Api<Empty> {
    Api(async {
        let caller = req.caller(&svc).await?;
        let talker = req.u64("talker_id")?;
        // session_type is optional here: only user sessions are ever intercepted.
        if let Some(st) = req.opt_i64("session_type")? {
            if st != 1 {
                return Err(DomainError::InvalidArgument("session_type"));
            }
        }
        let intercept = match req.small("status")? {
            0 => false,
            1 => true,
            _ => return Err(DomainError::InvalidArgument("status")),
        };
        svc.update_intercept(&caller, talker, intercept).await?;
        Ok(Empty {})
    }
    .await)
}

async fn batch_update_dustbin_ack(State(svc): State<AppState>, req: ApiReq) -> Api<Empty> {
    Api(async {
        let caller = req.caller(&svc).await?;
        svc.dustbin_ack_all(&caller).await?;
        Ok(Empty {})
    }
    .await)
}

async fn batch_rm_dustbin(State(svc): State<AppState>, req: ApiReq) -> Api<Empty> {
    Api(async {
        let caller = req.caller(&svc).await?;
        svc.dustbin_remove_all(&caller).await?;
        Ok(Empty {})
    }
    .await)
}
