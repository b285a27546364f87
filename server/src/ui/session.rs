//! Browser sessions: sign-in and sign-out pages, the token cookies, and the
//! [`Session`] extractor every page takes.
//!
//! Three cookies, all `HttpOnly; SameSite=Strict; Path=/`:
//!
//! - `tpsync_access`: the access token (a browser-session cookie; the
//!   token inside lives `access_ttl_s`).
//! - `tpsync_refresh`: the refresh token, kept `refresh_ttl_s`.
//! - `tpsync_device`: this browser's device id, `web-<16 hex>`, kept for
//!   years so the accounts see one device per browser rather than one per
//!   sign-in. It names no user: a second user signing in on the same
//!   browser gets a new id (a device belongs to one user).
//!
//! Cookies are read and written by hand (`cookie`, `set_cookie`): the
//! values are a JWT (base64url and dots), hex and a device id, none of
//! which needs quoting or encoding, the attributes are fixed, and only
//! these three names are ever read, so a cookie jar crate would be a
//! direct dependency for a dozen lines.

use std::net::SocketAddr;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use sync_core::{DeviceId, RecordId};
use tpsync_accounts::{AccountsError, Caller, Tokens};

use super::{document, error_body, respond};
use crate::metrics::Code;
use crate::{now_ms, ApiError, AppState};

const ACCESS: &str = "tpsync_access";
const REFRESH: &str = "tpsync_refresh";
const DEVICE: &str = "tpsync_device";
/// How long the browser keeps its device id: five years.
const DEVICE_MAX_AGE_S: u64 = 5 * 365 * 24 * 3600;
/// What the accounts list shows as the device's name.
const DEVICE_NAME: &str = "网页浏览器";

/// A signed-in browser: who, and the cookies to send back if its tokens
/// were refreshed on the way in. Every page answer goes through
/// [`Session::page`], [`Session::error`] or [`Session::redirect`], which
/// add those cookies.
pub(crate) struct Session {
    pub caller: Caller,
    set_cookies: Vec<String>,
}

impl Session {
    /// A 200 page.
    pub fn page(&self, title: &str, body: Markup) -> Response {
        self.page_with(StatusCode::OK, title, body)
    }

    pub fn page_with(&self, status: StatusCode, title: &str, body: Markup) -> Response {
        let mut resp = respond(status, document(Some(&self.caller), title, body));
        self.add_cookies(&mut resp);
        resp
    }

    /// The error page for `e`, with its status.
    pub fn error(&self, e: ApiError) -> Response {
        let (title, body) = error_body(&e);
        self.page_with(e.status(), &title, body)
    }

    /// 303 See Other to a page of this site.
    pub fn redirect(&self, location: &str) -> Response {
        let mut resp = see_other(location);
        self.add_cookies(&mut resp);
        resp
    }

    fn add_cookies(&self, resp: &mut Response) {
        for c in &self.set_cookies {
            if let Ok(v) = HeaderValue::from_str(c) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
}

fn see_other(location: &str) -> Response {
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

fn set_cookie(name: &str, value: &str, max_age_s: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(s) = max_age_s {
        c.push_str(&format!("; Max-Age={s}"));
    }
    c
}

fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn token_cookies(st: &AppState, t: &Tokens) -> Vec<String> {
    vec![
        set_cookie(ACCESS, &t.access_token, None),
        set_cookie(
            REFRESH,
            &t.refresh_token,
            Some(st.config.auth.refresh_ttl_s),
        ),
    ]
}

/// A fresh device id for a browser: `web-` and 16 random hex digits.
fn new_device() -> DeviceId {
    let hex = RecordId::random().to_string();
    DeviceId::new(format!("web-{}", &hex[hex.len() - 16..])).expect("a valid device id")
}

/// A `next=` target that stays on these pages (no open redirect).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if (n == "/ui/" || n.starts_with("/ui/"))
                && n.len() <= 512
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/ui/",
    }
}

/// Whom the request's cookies name: the access token if it verifies, else
/// a new pair for the refresh token (and the cookies to set). `Ok(None)`:
/// no usable session.
async fn resolve(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Caller, Vec<String>)>, ApiError> {
    if let Some(access) = cookie(headers, ACCESS) {
        match st.accounts.verify(access, now_ms()) {
            Ok(c) => return Ok(Some((c, vec![]))),
            Err(AccountsError::Internal(e)) => return Err(ApiError::internal(e)),
            Err(e) => st.metrics.auth_refused(e.code()),
        }
    }
    let Some(refresh) = cookie(headers, REFRESH).map(str::to_owned) else {
        return Ok(None);
    };
    let s = st.clone();
    let tokens = tokio::task::spawn_blocking(move || {
        let _g = s.write_gate.read();
        s.accounts.refresh(&refresh, now_ms())
    })
    .await
    .map_err(ApiError::internal)?;
    let tokens = match tokens {
        Ok(t) => t,
        Err(AccountsError::Internal(e)) => return Err(ApiError::internal(e)),
        Err(e) => {
            st.metrics.auth_refused(e.code());
            return Ok(None);
        }
    };
    match st.accounts.verify(&tokens.access_token, now_ms()) {
        Ok(c) => Ok(Some((c, token_cookies(st, &tokens)))),
        Err(AccountsError::Internal(e)) => Err(ApiError::internal(e)),
        Err(_) => Ok(None),
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        match resolve(st, &parts.headers).await {
            Ok(Some((caller, set_cookies))) => {
                if parts.method != Method::GET && parts.method != Method::HEAD {
                    check_origin(&parts.headers).map_err(|e| {
                        let (title, body) = error_body(&e);
                        respond(e.status(), document(Some(&caller), &title, body))
                    })?;
                }
                Ok(Session {
                    caller,
                    set_cookies,
                })
            }
            Ok(None) => Err(to_login(parts)),
            Err(e) => {
                let (title, body) = error_body(&e);
                Err(respond(e.status(), document(None, &title, body)))
            }
        }
    }
}

/// A form posted from another site is refused (SameSite=Strict already
/// keeps the cookies off it; this is the second lock).
fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    if origin_host == host {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "这个表单来自其他网站（{origin}），没有执行。"
        )))
    }
}

/// 303 to the sign-in page, remembering where the browser was going;
/// stale token cookies are cleared.
fn to_login(parts: &Parts) -> Response {
    let target = if parts.method == Method::GET || parts.method == Method::HEAD {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/ui/".into())
    } else {
        // A form posted after the session ended: back to its page.
        let p = parts.uri.path();
        p.rsplit_once('/').map(|(a, _)| a).unwrap_or(p).to_owned()
    };
    let next = safe_next(Some(&target));
    let mut resp = see_other(&format!("/ui/login?next={}", super::enc(next)));
    for name in [ACCESS, REFRESH] {
        if cookie(&parts.headers, name).is_some() {
            if let Ok(v) = HeaderValue::from_str(&clear_cookie(name)) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
    resp
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// `GET /ui/login`
pub(crate) async fn login_form(Query(q): Query<NextQuery>) -> Response {
    login_page(StatusCode::OK, safe_next(q.next.as_deref()), "", None)
}

fn login_page(status: StatusCode, next: &str, username: &str, error: Option<&str>) -> Response {
    let body = html! {
        section.login {
            h1 { "登录" }
            p.sub { "乡镇中心学校、县教育局和教师用自己的账号登录。" }
            @if let Some(e) = error {
                p.banner.err role="alert" data-testid="login-error" { (e) }
            }
            form method="post" action="/ui/login" {
                input type="hidden" name="next" value=(next);
                label for="username" { "用户名" }
                input #username type="text" name="username" value=(username)
                    autocomplete="username" required autofocus[username.is_empty()];
                label for="password" { "密码" }
                input #password type="password" name="password"
                    autocomplete="current-password" required;
                button type="submit" { "登录" }
            }
        }
    };
    respond(status, document(None, "登录", body))
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    next: Option<String>,
}

/// `POST /ui/login`: signs in, sets the cookies, 303 to `next`.
pub(crate) async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return login_page(
            StatusCode::BAD_REQUEST,
            "/ui/",
            "",
            Some("登录表单没有收到，请重新填写。"),
        );
    };
    let next = safe_next(f.next.as_deref()).to_owned();
    let username = f.username.unwrap_or_default().trim().to_owned();
    let password = f.password.unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        return login_page(
            StatusCode::BAD_REQUEST,
            &next,
            &username,
            Some("请填写用户名和密码。"),
        );
    }
    let ip = ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let known = cookie(&headers, DEVICE)
        .filter(|d| d.starts_with("web-"))
        .and_then(|d| DeviceId::new(d).ok());
    let s = st.clone();
    let name = username.clone();
    let r = tokio::task::spawn_blocking(move || {
        let _g = s.write_gate.read();
        let mut device = known.unwrap_or_else(new_device);
        let mut r = s
            .accounts
            .login(&name, &password, &device, Some(DEVICE_NAME), ip, now_ms());
        // This browser's id belongs to another user (two people share the
        // office computer) or was revoked: sign in on a fresh id.
        if matches!(
            r,
            Err(AccountsError::Conflict(_) | AccountsError::DeviceRevoked { .. })
        ) {
            device = new_device();
            r = s
                .accounts
                .login(&name, &password, &device, Some(DEVICE_NAME), ip, now_ms());
        }
        (device, r)
    })
    .await;
    let (device, r) = match r {
        Ok(x) => x,
        Err(e) => {
            let _ = ApiError::internal(e);
            return login_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &next,
                &username,
                Some("服务器出错，请稍后再试。"),
            );
        }
    };
    let code = match &r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    st.metrics.logins.get_or_create(&Code { code }).inc();
    match r {
        Ok(tokens) => {
            let mut resp = see_other(&next);
            let mut cookies = token_cookies(&st, &tokens);
            cookies.push(set_cookie(DEVICE, device.as_str(), Some(DEVICE_MAX_AGE_S)));
            for c in cookies {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            tracing::info!(username = %tokens.user.username, device = %device, "signed in on the web pages");
            resp
        }
        Err(e) => {
            let (status, message) = match &e {
                AccountsError::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "用户名或密码不对，请重新输入。".to_owned(),
                ),
                AccountsError::RateLimited { retry_after_s } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("登录尝试次数太多，请 {retry_after_s} 秒后再试。"),
                ),
                AccountsError::Forbidden(_) => (
                    StatusCode::FORBIDDEN,
                    "这个账号已停用，请联系县里的管理员。".to_owned(),
                ),
                AccountsError::Internal(what) => {
                    let _ = ApiError::internal(what);
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "服务器出错，请稍后再试。".to_owned(),
                    )
                }
                other => (
                    StatusCode::from_u16(other.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
                    format!("不能登录：{other}"),
                ),
            };
            let mut resp = login_page(status, &next, &username, Some(&message));
            if let Some(s) = e.retry_after_s() {
                if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            resp
        }
    }
}

/// `GET|POST /ui/logout`: ends the device's session on the server (its
/// refresh token stops working) and clears the token cookies.
pub(crate) async fn logout(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(Some((caller, _))) = resolve(&st, &headers).await {
        let s = st.clone();
        let r = tokio::task::spawn_blocking(move || {
            let _g = s.write_gate.read();
            s.accounts.logout(&caller, now_ms())
        })
        .await;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "web sign-out failed");
        }
    }
    let mut resp = see_other("/ui/login");
    for name in [ACCESS, REFRESH] {
        if let Ok(v) = HeaderValue::from_str(&clear_cookie(name)) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_pages() {
        assert_eq!(safe_next(Some("/ui/schools/1?x=1")), "/ui/schools/1?x=1");
        assert_eq!(safe_next(Some("//evil.example/ui/")), "/ui/");
        assert_eq!(safe_next(Some("https://evil.example/ui/")), "/ui/");
        assert_eq!(safe_next(Some("/ui/..//evil")), "/ui/");
        assert_eq!(safe_next(Some("/v1/reports/county")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn cookies_are_read_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; tpsync_access=abc.def"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("tpsync_refresh=00ff"),
        );
        assert_eq!(cookie(&h, ACCESS), Some("abc.def"));
        assert_eq!(cookie(&h, REFRESH), Some("00ff"));
        assert_eq!(cookie(&h, DEVICE), None);
        assert!(new_device().as_str().starts_with("web-"));
        assert_eq!(new_device().as_str().len(), 20);
    }
}
