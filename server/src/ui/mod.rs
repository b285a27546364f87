//! Dashboard pages in Chinese for township clerks (乡镇中心学校), county
//! officials (县教育局) and a teacher's own school, rendered on the server.
//!
//! The pages read the same read model as the JSON API
//! ([`crate::reports`], `/v1/reports/…`) and go through the same access
//! rules ([`crate::routes::reports::view`]) and the same review step
//! ([`crate::routes::reports::apply_review`]); nothing here computes a
//! figure of its own beyond a sum of the model's rows.
//!
//! - Everything is readable with JavaScript off, and there is none: links,
//!   HTML forms (POST, then 303 to the page), `<details>` for long lists.
//!   The answers carry a Content-Security-Policy that allows no script at
//!   all, so even an escaping mistake could not run one; images only from
//!   this server (attachment thumbnails, `/ui/schools/{code}/blobs/…`).
//! - No external assets: the county's network may be down while its LAN
//!   works. The CSS is inline ([`style::CSS`]), charts are inline SVG drawn
//!   here ([`charts`]), fonts are the device's own.
//! - Phones first: the page never scrolls sideways at 390 px; wide tables
//!   scroll inside their own box (`.scroll`), charts scale with the width.
//! - Tests read numbers, not formatted text: every figure carries a stable
//!   `data-testid` and its raw number in `data-value` (Rust's shortest
//!   round-trip form, as `serde_json` writes it), or `data-missing` when
//!   the model has none.
//!
//! # Why `maud`
//!
//! Templates are Rust expressions checked at compile time: a misspelt field
//! or a wrong type is a build error, not a blank cell found in the county
//! office. Every interpolated value is HTML-escaped unless wrapped in
//! `PreEscaped` (used here only for the constant CSS), which matters
//! because school names, comments and plan texts come from phones. It has
//! no runtime template files to ship or find, no interpreter, and needs
//! only `itoa` at run time; with its `axum` feature a `Markup` is a
//! response. Askama (templates in files, also compiled) was the other
//! candidate; maud keeps a page's markup beside the code that picks its
//! numbers, and these pages are mostly loops over report rows.
//!
//! # Sessions
//!
//! [`session`]: `/ui/login` signs in through `Accounts::login` as the JSON
//! API does, on a per-browser device id (`web-<16 hex>`, kept in its own
//! long-lived cookie), and keeps the access and refresh tokens in HttpOnly,
//! SameSite=Strict cookies (Strict also keeps other sites' forms from
//! posting review steps with them). An access token that no longer
//! verifies is exchanged for a new pair with the refresh cookie on the
//! request that finds it; a page without a session redirects to
//! `/ui/login?next=…`.

mod area;
mod charts;
mod downloads;
mod format;
mod gaps;
mod school;
mod session;
mod style;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use tpsync_accounts::Caller;

use crate::routes::reports::{view, View};
use crate::{ApiError, AppState};

pub(crate) use session::Session;

/// Largest form body (a review comment, a sign-in).
const MAX_FORM_BYTES: usize = 16 << 10;

/// The pages, under `/ui/…`, and `/` → `/ui/`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(home))
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/logout", get(session::logout).post(session::logout))
        .route("/ui/county", get(area::county))
        .route("/ui/townships/{code}", get(area::township))
        .route("/ui/schools/{code}", get(school::page))
        .route("/ui/schools/{code}/review", post(school::review))
        .route("/ui/schools/{code}/blobs/{hash}", get(school::blob))
        .route(
            "/ui/schools/{code}/ledgers/{file}",
            get(downloads::register),
        )
        .route("/ui/exports/{file}", get(downloads::report))
        .route("/ui/gaps", get(gaps::gaps))
        .route("/ui/freshness", get(gaps::freshness))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .fallback(fallback)
}

/// Paths nothing answers. This router is merged after the API's
/// problem-document layer (so that its error pages stay pages), and a merge
/// keeps the fallback of the router merged in: this one is the whole app's.
/// Under `/ui/` it is a page; anywhere else it is exactly the problem
/// document that layer makes of axum's own empty 404.
async fn fallback(uri: Uri) -> Response {
    let e = ApiError::new(StatusCode::NOT_FOUND, "not_found", "Not Found");
    if uri.path().starts_with("/ui/") {
        let e = ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("没有 {} 这一页。", uri.path()),
        );
        let (title, body) = error_body(&e);
        return respond(StatusCode::NOT_FOUND, document(None, &title, body));
    }
    e.into_response()
}

/// `/ui/`: the overview the caller is responsible for.
async fn home(s: Session) -> Response {
    match view(&s.caller) {
        Ok(View::County) => s.redirect("/ui/county"),
        Ok(View::Township(t)) => s.redirect(&format!("/ui/townships/{}", enc(&t))),
        Ok(View::School(c)) => s.redirect(&format!("/ui/schools/{}", enc(&c))),
        Err(e) => s.error(e),
    }
}

/// A path segment, percent-encoded.
pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Headers every page gets: no caching of personal data, no script, no
/// framing, no sniffing.
fn harden(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Headers for an attachment's bytes opened in a browser. The media type
/// is whatever the phone wrote in the record, and the bytes are served on
/// this origin with the session cookies: only photos and PDFs are shown
/// inline, anything else (HTML, SVG, …) is a download; nothing in them may
/// run a script or load anything (`sandbox`; a PDF viewer refuses a
/// sandboxed document, and runs no script of the page's origin anyway).
/// Not kept by the browser, like the pages (scans of archive documents are
/// personal data too).
pub(crate) fn harden_blob(resp: &mut Response) {
    let media = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let pdf = media == "application/pdf";
    let inline = pdf
        || matches!(
            media.as_str(),
            "image/jpeg" | "image/png" | "image/webp" | "image/gif"
        );
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !inline {
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    if !pdf {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; \
                 frame-ancestors 'none'; sandbox",
            ),
        );
    }
}

/// A whole HTML document around `body`, with the navigation for `who`.
pub(crate) fn document(who: Option<&Caller>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · 学校档案" }
                style { (PreEscaped(style::CSS)) }
            }
            body {
                header.top {
                    a.brand href="/ui/" { "学校档案与标准化建设" }
                    @if let Some(c) = who {
                        nav {
                            a href="/ui/" { "总览" }
                            @if !matches!(view(c), Ok(View::School(_))) {
                                a href="/ui/gaps" { "缺漏清单" }
                                a href="/ui/freshness" { "同步情况" }
                            }
                        }
                        span.who data-testid="who" {
                            (c.username) "（" (role_label(c)) "）"
                        }
                        form.inline method="post" action="/ui/logout" {
                            button type="submit" { "退出" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn role_label(c: &Caller) -> &'static str {
    match c.role {
        tpsync_accounts::Role::Teacher => "教师",
        tpsync_accounts::Role::Township => "乡镇中心学校",
        tpsync_accounts::Role::County => "县教育局",
        tpsync_accounts::Role::Admin => "管理员",
    }
}

/// An HTML answer with the page headers.
pub(crate) fn respond(status: StatusCode, page: Markup) -> Response {
    let mut resp = (status, page).into_response();
    harden(&mut resp);
    resp
}

/// The page for an error: a Chinese headline by status, and the detail.
pub(crate) fn error_body(e: &ApiError) -> (String, Markup) {
    let headline = match e.status {
        400 => "请求有误",
        401 => "请先登录",
        403 => "无权查看",
        404 => "找不到",
        409 => "暂不能操作",
        429 => "操作太频繁",
        503 => "报表正在生成",
        _ => "服务器出错",
    };
    let hint = match e.status {
        403 => Some("这一页不在您的管理范围内。"),
        503 => Some("服务器刚刚启动，正在读取各校数据；请过几秒刷新本页。"),
        s if s >= 500 => Some("服务器已记录这个错误，请稍后再试。"),
        _ => None,
    };
    let body = html! {
        section.error data-testid="error" data-status=(e.status) data-code=(e.code) {
            h1 { (headline) }
            @if let Some(h) = hint { p { (h) } }
            p.detail { (e.detail) }
            p { a href="/ui/" { "返回首页" } }
        }
    };
    (headline.to_owned(), body)
}
