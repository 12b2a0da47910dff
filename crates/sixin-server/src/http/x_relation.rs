//! `/x/relation/modify`: follow, unfollow, block, unblock.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use sixin_proto::Envelope;

use super::{error_response, json_response, ApiReq, AppState};
use crate::domain::{DomainError, RelationAct};

pub fn routes() -> Router<AppState> {
    Router::new().route("/x/relation/modify", post(modify))
}

async fn modify(State(svc): State<AppState>, req: ApiReq) -> Response {
    let r = async {
        let caller = req.caller(&svc).await?;
        let fid = req.u64("fid")?;
        let act = req.opt_i64("act")?.ok_or(DomainError::BadRequest("act"))?;
        let act = RelationAct::from_code(act).ok_or(DomainError::InvalidArgument("act"))?;
        svc.relation_modify(&caller, fid, act).await
    }
    .await;
    match r {
        // Upstream answers this endpoint without a data field.
        Ok(()) => {
            let mut env: Envelope<()> = Envelope::ok(());
            env.data = sixin_proto::envelope::Data::Absent;
            json_response(StatusCode::OK, &env)
        }
        Err(e) => error_response(&e),
    }
}
