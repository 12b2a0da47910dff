//! Account endpoints clients call beside the message API: nav (with the WBI keys), myinfo and
//! user cards.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sixin_proto::envelope::Data;
use sixin_proto::params::parse_id_list;
use sixin_proto::{ApiCode, Envelope, ImUserInfo, MyInfo, UserCard};

use super::{error_response, find_cookie, json_response, Api, ApiReq, AppState};
use crate::domain::DomainError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/x/web-interface/nav", get(nav))
        .route("/x/space/myinfo", get(myinfo))
        .route("/account/v1/user/cards", get(cards))
        .route("/x/im/user_infos", get(user_infos))
}

/// `nav` hands out the WBI keys, so it is never itself subject to the WBI check (a client
/// in `wbi = "require"` mode could not otherwise get the keys to sign with).
async fn nav(State(svc): State<AppState>, headers: HeaderMap) -> Response {
    let sessdata = find_cookie(headers.get_all(header::COOKIE), "SESSDATA");
    let caller = svc.authenticate(sessdata).await.ok();
    match svc.nav(caller.as_ref()).await {
        // Logged out, nav still answers with the WBI keys, under code -101.
        Ok(nav) if !nav.is_login => json_response(
            StatusCode::OK,
            &Envelope::error_with(ApiCode::NotLoggedIn, Data::Value(nav)),
        ),
        Ok(nav) => json_response(StatusCode::OK, &Envelope::ok(nav)),
        Err(e) => error_response(&e),
    }
    .into_response()
}

async fn myinfo(State(svc): State<AppState>, req: ApiReq) -> Api<MyInfo> {
    Api(async {
        let caller = req.caller(&svc).await?;
        svc.my_info(&caller).await
    }
    .await)
}

fn uids(req: &ApiReq) -> Result<Vec<u64>, DomainError> {
    let v = req
        .params
        .get_nonempty("uids")
        .ok_or(DomainError::BadRequest("uids"))?;
    let ids = parse_id_list(v).ok_or(DomainError::BadRequest("uids"))?;
    if ids.is_empty() || ids.len() > 50 {
        return Err(DomainError::InvalidArgument("uids"));
    }
    Ok(ids)
}

async fn cards(State(svc): State<AppState>, req: ApiReq) -> Api<Vec<UserCard>> {
    Api(async {
        req.caller(&svc).await?;
        svc.cards(&uids(&req)?).await
    }
    .await)
}

async fn user_infos(State(svc): State<AppState>, req: ApiReq) -> Api<Vec<ImUserInfo>> {
    Api(async {
        req.caller(&svc).await?;
        svc.im_user_infos(&uids(&req)?).await
    }
    .await)
}
