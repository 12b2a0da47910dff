//! The HTTP surface: routing by path (the `Host` header is ignored), request gathering, the
//! response envelope, and the one mapping from domain errors to API codes.

mod admin;
mod link_setting;
mod session_svr;
mod sixin_ext;
mod svr_sync;
mod web_im;
mod x_relation;
mod x_web_interface;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use sixin_proto::envelope::Data;
use sixin_proto::json::WriteJson;
use sixin_proto::params::{parse_i64, parse_u64, Params};
use sixin_proto::{ApiCode, Envelope};

use crate::config::WbiMode;
use crate::domain::{Caller, DomainError, Service};

pub type AppState = Arc<Service>;

/// The media type of a multipart form, matched without regard to case.
const MULTIPART: &str = "multipart/form-data";

/// Largest request body accepted (a send is at most a few KB; multipart adds framing).
const MAX_BODY: usize = 64 * 1024;

/// The single mapping from a domain error to its API code.
pub fn api_code(e: &DomainError) -> ApiCode {
    match e {
        DomainError::NotLoggedIn => ApiCode::NotLoggedIn,
        DomainError::Csrf => ApiCode::CsrfFailed,
        DomainError::BadRequest(_) => ApiCode::BadRequest,
        DomainError::InvalidArgument(_) => ApiCode::InvalidArgument,
        DomainError::Forbidden => ApiCode::Forbidden,
        DomainError::UnsupportedMsgType => ApiCode::UnsupportedMsgType,
        DomainError::SendToSelf => ApiCode::SendToSelf,
        DomainError::TooLong => ApiCode::MessageTooLong,
        DomainError::BadImage => ApiCode::BadImage,
        DomainError::MsgKeyNotFound => ApiCode::MsgKeyNotFound,
        DomainError::AlreadyRecalled => ApiCode::AlreadyRecalled,
        DomainError::RecallExpired => ApiCode::RecallExpired,
        DomainError::NotGroupMember => ApiCode::NotGroupMember,
        DomainError::GroupDissolved => ApiCode::GroupDissolved,
        DomainError::SessionNotFound => ApiCode::SessionNotFound,
        DomainError::NotFound => ApiCode::NotFound,
        DomainError::PrivacyBlocked => ApiCode::PrivacyBlocked,
        DomainError::YouBlocked => ApiCode::YouBlocked,
        DomainError::OneMessageLimit => ApiCode::OneMessageLimit,
        DomainError::TooFast => ApiCode::TooFast,
        DomainError::DailyLimit => ApiCode::DailyLimit,
        DomainError::Maintenance => ApiCode::Maintenance,
        DomainError::SelfRelation => ApiCode::SelfRelation,
        DomainError::FollowBlocked => ApiCode::FollowBlocked,
        DomainError::AlreadyFollowed => ApiCode::AlreadyFollowed,
        DomainError::AlreadyBlocked => ApiCode::AlreadyBlocked,
        DomainError::Conflict(_) => ApiCode::BadRequest,
        DomainError::Store(_) => ApiCode::ServerError,
    }
}

/// A JSON answer with the given HTTP status.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    // Pages of messages and sessions are kilobytes: start at a size that spares most of the
    // regrowing (and copying) of a buffer that starts small.
    let mut bytes = Vec::with_capacity(4096);
    let written = serde_json::to_writer(&mut bytes, body);
    json_bytes(status, written.map(|()| bytes))
}

/// An answer of JSON already written, or the failure to write it.
fn json_bytes(status: StatusCode, bytes: serde_json::Result<Vec<u8>>) -> Response {
    match bytes {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The envelope of a domain result.
pub struct Api<T>(pub Result<T, DomainError>);

impl<T: Serialize> IntoResponse for Api<T> {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(v) => json_response(StatusCode::OK, &Envelope::ok(v)),
            Err(e) => error_response(&e),
        }
    }
}

/// The envelope of a domain result answered by the page (messages, sessions), whose JSON is
/// written directly ([`sixin_proto::json`]): the same bytes as [`Api`]'s, at a fraction of the
/// cost.
pub struct Page<T>(pub Result<T, DomainError>);

impl<T: WriteJson> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(v) => {
                // A page of 20 sessions with their last messages is about 14 KB: room for it
                // at once spares copying it twice while the buffer grows.
                let mut bytes = Vec::with_capacity(16 * 1024);
                let written = Envelope::ok(v).write_json(&mut bytes);
                json_bytes(StatusCode::OK, written.map(|()| bytes))
            }
            Err(e) => error_response(&e),
        }
    }
}

pub(crate) fn error_response(e: &DomainError) -> Response {
    let code = api_code(e);
    if let DomainError::Store(err) = e {
        tracing::error!(error = %err, "store failure");
    }
    let env: Envelope<()> = match code {
        // session_detail answers its "no session" code with an explicit null.
        ApiCode::SessionNotFound => Envelope::error_with(code, Data::Null),
        _ => Envelope::error(code),
    };
    json_response(StatusCode::OK, &env)
}

/// One API request: its parameters (query string, then body) and cookies.
pub struct ApiReq {
    pub method: Method,
    pub params: Params,
    /// The `Cookie` headers as sent, read by [`ApiReq::cookie`] (a request reads one or two
    /// of its cookies, so they are not copied out one by one).
    cookies: Vec<header::HeaderValue>,
}

/// The value of the cookie `name` in `Cookie` header values (the first of that name), name and
/// value trimmed, the value also of its quotes.
pub(crate) fn find_cookie<'a>(
    values: impl IntoIterator<Item = &'a header::HeaderValue>,
    name: &str,
) -> Option<&'a str> {
    values
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

impl FromRequest<AppState> for ApiReq {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bad = || error_response(&DomainError::BadRequest("malformed request"));
        // A body refused before its end leaves the rest unread on the connection, which is
        // then closed after the answer: the answer says so, so no client sends its next
        // request on it.
        let bad_body = || {
            let mut r = bad();
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            r
        };
        let method = req.method().clone();
        let cookies: Vec<header::HeaderValue> = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .cloned()
            .collect();
        let multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.as_bytes().get(..MULTIPART.len()))
            .is_some_and(|t| t.eq_ignore_ascii_case(MULTIPART.as_bytes()));
        let mut params = Params::parse_urlencoded(req.uri().query().unwrap_or("").as_bytes());

        // Only the query string is signed: checked before the body's parameters join it.
        match state.config.wbi {
            WbiMode::Ignore => {}
            WbiMode::Verify if params.get("w_rid").is_none() => {}
            _ => state
                .verify_wbi(params.pairs())
                .map_err(|e| error_response(&e))?,
        }

        if method == Method::POST {
            if multipart {
                let mut mp = axum::extract::Multipart::from_request(req, state)
                    .await
                    .map_err(|_| bad_body())?;
                let mut total = 0usize;
                while let Some(field) = mp.next_field().await.map_err(|_| bad_body())? {
                    let name = field.name().unwrap_or("").to_string();
                    let value = field.text().await.map_err(|_| bad_body())?;
                    total += name.len() + value.len();
                    if total > MAX_BODY {
                        return Err(bad_body());
                    }
                    params.push(name, value);
                }
            } else {
                let body: Bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
                    .await
                    .map_err(|_| bad_body())?;
                params.append_urlencoded(&body);
            }
        }
        Ok(ApiReq {
            method,
            params,
            cookies,
        })
    }
}

impl ApiReq {
    pub fn cookie(&self, name: &str) -> Option<&str> {
        find_cookie(&self.cookies, name)
    }

    /// The logged-in caller (-101 otherwise); for a POST also the CSRF check (-111).
    pub async fn caller(&self, svc: &Service) -> Result<Caller, DomainError> {
        let caller = svc.authenticate(self.cookie("SESSDATA")).await?;
        if self.method == Method::POST {
            svc.check_csrf(&caller, self.params.first_of(&["csrf", "csrf_token"]))?;
        }
        Ok(caller)
    }

    /// A required unsigned id (missing or malformed → -400).
    pub fn u64(&self, name: &'static str) -> Result<u64, DomainError> {
        let v = self
            .params
            .get_nonempty(name)
            .ok_or(DomainError::BadRequest(name))?;
        parse_u64(v).ok_or(DomainError::BadRequest(name))
    }

    /// An optional unsigned id (present but malformed → -400).
    pub fn opt_u64(&self, name: &'static str) -> Result<Option<u64>, DomainError> {
        match self.params.get_nonempty(name) {
            None => Ok(None),
            Some(v) => parse_u64(v).map(Some).ok_or(DomainError::BadRequest(name)),
        }
    }

    /// An optional signed integer (present but malformed → -400).
    pub fn opt_i64(&self, name: &'static str) -> Result<Option<i64>, DomainError> {
        match self.params.get_nonempty(name) {
            None => Ok(None),
            Some(v) => parse_i64(v).map(Some).ok_or(DomainError::BadRequest(name)),
        }
    }

    /// A 0/1 flag; absent is 0, anything but 0 or 1 is an invalid value (2).
    pub fn flag(&self, name: &'static str) -> Result<bool, DomainError> {
        match self.opt_i64(name)? {
            None | Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(_) => Err(DomainError::InvalidArgument(name)),
        }
    }

    /// A required small enum value: missing/malformed → -400, out of u8 range → 2.
    pub fn small(&self, name: &'static str) -> Result<u8, DomainError> {
        let v = self.opt_i64(name)?.ok_or(DomainError::BadRequest(name))?;
        u8::try_from(v).map_err(|_| DomainError::InvalidArgument(name))
    }

    /// A page size: absent → `default`, negative or malformed → -400.
    pub fn size(&self, name: &'static str, default: u32) -> Result<u32, DomainError> {
        match self.opt_u64(name)? {
            None => Ok(default),
            Some(v) => Ok(u32::try_from(v).unwrap_or(u32::MAX)),
        }
    }

    /// A µs timestamp bound; 0 counts as absent.
    pub fn ts(&self, name: &'static str) -> Result<Option<i64>, DomainError> {
        Ok(self
            .opt_u64(name)?
            .filter(|v| *v > 0)
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
    }

    pub fn web(&self) -> bool {
        self.params.get("mobi_app").map(str::trim) == Some("web")
    }
}

async fn healthz(State(svc): State<AppState>) -> Response {
    match svc.store.ping().await {
        Ok(()) => json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "backend": svc.store.backend()}),
        ),
        Err(e) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "unavailable", "error": e.to_string()}),
        ),
    }
}

/// Prometheus text exposition of the process's counters.
async fn metrics(State(svc): State<AppState>) -> Response {
    let body = format!(
        "# HELP sixin_store_rows_written_total Rows written by message inserts since start.\n\
         # TYPE sixin_store_rows_written_total counter\n\
         sixin_store_rows_written_total {}\n\
         # HELP sixin_runtime_workers Threads that run requests (setting workers).\n\
         # TYPE sixin_runtime_workers gauge\n\
         sixin_runtime_workers {}\n\
         # HELP sixin_info Build and backend of this process.\n\
         # TYPE sixin_info gauge\n\
         sixin_info{{version=\"{}\",backend=\"{}\"}} 1\n",
        svc.store.rows_written(),
        tokio::runtime::Handle::current().metrics().num_workers(),
        env!("CARGO_PKG_VERSION"),
        svc.store.backend(),
    );
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    let env: Envelope<()> = Envelope::error(ApiCode::NotFound);
    json_response(StatusCode::NOT_FOUND, &env)
}

async fn method_not_allowed() -> Response {
    let env: Envelope<()> = Envelope::error(ApiCode::MethodNotAllowed);
    json_response(StatusCode::METHOD_NOT_ALLOWED, &env)
}

/// The routes. The request-wide middleware goes around the router once ([`serve`]): put on the
/// router with `Router::layer`, it wraps every route, and each request clones every layer's
/// boxed service (17 allocations, about 6,000 instructions per request).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(session_svr::routes())
        .merge(svr_sync::routes())
        .merge(web_im::routes())
        .merge(link_setting::routes())
        .merge(x_web_interface::routes())
        .merge(x_relation::routes())
        .merge(sixin_ext::routes())
        .nest("/admin/v1", admin::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// What a panicking handler answers: -500, logged. A bug must not take the process down.
fn panic_answer(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    let env: Envelope<()> = Envelope::error(ApiCode::ServerError);
    json_response(StatusCode::INTERNAL_SERVER_ERROR, &env)
}

/// `routes` with the request-wide middleware around them: the body limit, the panic catcher
/// and request tracing.
fn with_middleware(
    routes: Router,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::ServiceBuilder::new()
        .map_response(IntoResponse::into_response)
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(
                    tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::DEBUG),
                )
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::DEBUG),
                ),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_answer,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .service(routes)
}

/// Serves the routes on `listener` until `shutdown` completes, with the request-wide
/// middleware around the router ([`with_middleware`]).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = with_middleware(router(state));
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
        let routes = Router::new()
            .route(
                "/boom",
                get(|| async {
                    panic!("a bug");
                    #[allow(unreachable_code)]
                    "unreachable"
                }),
            )
            .route("/fine", get(|| async { "fine" }));
        let app = with_middleware(routes);
        let get = |uri: &str| {
            Request::builder()
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let r = app.clone().oneshot(get("/boom")).await.unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], -500);
        assert_eq!(v["message"], ApiCode::ServerError.message());
        let r = app.oneshot(get("/fine")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"fine");
    }
}
