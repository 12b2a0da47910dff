//! `/svr_sync/v1/svr_sync/fetch_session_msgs`: history.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use sixin_proto::MessagePage;

use super::{ApiReq, AppState, Page};
use crate::domain::{DomainError, FetchRequest};

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/svr_sync/v1/svr_sync/fetch_session_msgs",
        get(fetch_session_msgs),
    )
}

async fn fetch_session_msgs(State(svc): State<AppState>, req: ApiReq) -> Page<MessagePage> {
    Page(
        async {
            let caller = req.caller(&svc).await?;
            let talker_id = req.u64("talker_id")?;
            let session_type = req.small("session_type")?;
            if !matches!(session_type, 1 | 2) {
                return Err(DomainError::InvalidArgument("session_type"));
            }
            let r = FetchRequest {
                talker_id,
                session_type,
                size: req.size("size", 0)?,
                begin_seqno: req.opt_u64("begin_seqno")?,
                end_seqno: req.opt_u64("end_seqno")?,
                web: req.web(),
            };
            svc.fetch(&caller, r).await
        }
        .await,
    )
}
