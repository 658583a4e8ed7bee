//! A plain server-rendered dashboard: services and incidents, and one page
//! per incident with its journal. Asks for the token once (a login form),
//! then keeps it in an HttpOnly, SameSite=Strict cookie.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use warden_model::IncidentId;
use warden_store::JournalQuery;

use crate::auth::COOKIE;
use crate::{ApiState, read_live};

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin-bottom:2rem}\
td,th{border-bottom:1px solid #ddd;padding:.3rem .8rem;text-align:left;vertical-align:top}th{background:#f4f4f4}\
.anomalous,.escalated,.open,.awaiting_approval{color:#b00}.healthy,.resolved{color:#070}.verifying,.diagnosed{color:#a60}\
code{font-size:.9em}";

fn page(title: &str, platform: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{t} — warden</title><style>{STYLE}</style></head>\
         <body><h1>{p}</h1><p><a href=\"/\">overview</a> · <form method=post action=/logout style=display:inline><button>log out</button></form></p>{body}</body></html>",
        t = esc(title),
        p = esc(platform),
    ))
}

pub async fn index(State(s): State<ApiState>) -> Response {
    let mut body = String::from(
        "<h2>Services</h2><table><tr><th>service</th><th>status</th><th>source</th><th>depends on</th><th>description</th></tr>",
    );
    {
        let live = read_live(&s.live);
        for svc in live.services.values() {
            let sick = live.anomalies.iter().any(|a| a.service == svc.name);
            let status = if sick { "anomalous" } else { "healthy" };
            let deps: Vec<&str> = svc.dependencies.iter().map(|d| d.as_str()).collect();
            body.push_str(&format!(
                "<tr><td>{}</td><td class={status}>{status}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(svc.name.as_str()),
                esc(&svc.source),
                esc(&deps.join(", ")),
                esc(&svc.description)
            ));
        }
    }
    body.push_str("</table><h2>Incidents</h2><table><tr><th>id</th><th>status</th><th>opened</th><th>title</th><th>root cause</th></tr>");
    match s.store.incidents(50) {
        Ok(list) => {
            for i in list {
                let rc = i
                    .root_cause()
                    .map(|c| format!("{} ({})", c.service, c.metric))
                    .unwrap_or_default();
                body.push_str(&format!(
                    "<tr><td><a href=\"/incidents/{id}\">{id}</a></td><td class={st}>{st}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    i.opened_at,
                    esc(&i.title),
                    esc(&rc),
                    id = esc(i.id.as_str()),
                    st = i.status.as_str(),
                ));
            }
        }
        Err(e) => body.push_str(&format!(
            "<tr><td colspan=5>error: {}</td></tr>",
            esc(&e.to_string())
        )),
    }
    body.push_str("</table>");
    body.push_str(&capacity_table(&s));
    page("overview", &s.config.platform_name, &body).into_response()
}

/// The capacity plans: soonest predicted exhaustion first.
fn capacity_table(s: &ApiState) -> String {
    let live = read_live(&s.live);
    let mut plans: Vec<_> = live.capacity.values().collect();
    plans.sort_by_key(|p| {
        (
            p.soonest()
                .and_then(|r| r.earliest_at.or(r.exhaustion_at))
                .map_or(i64::MAX, |t| t.millis()),
            p.service.clone(),
        )
    });
    let mut out = String::from(
        "<h2>Capacity</h2><table><tr><th>service</th><th>cpu now → end</th><th>memory now → end</th>\
         <th>warning signals</th><th>scale timing</th><th>proposals</th></tr>",
    );
    for p in plans {
        let res = |m: warden_model::Metric| {
            p.resources
                .iter()
                .find(|r| r.metric == m)
                .map(|r| format!("{:.0}% → {:.0}%", 100.0 * r.current, 100.0 * r.end))
                .unwrap_or_default()
        };
        let warn = !p.warning_signals.is_empty();
        let proposals: Vec<String> = p.proposals.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td></tr>",
            esc(p.service.as_str()),
            esc(&res(warden_model::Metric::CpuUsage)),
            esc(&res(warden_model::Metric::MemoryUsage)),
            if warn { " class=anomalous" } else { "" },
            esc(&p.warning_signals.join("; ")),
            esc(&p.scale_timing),
            esc(&proposals.join("; ")),
        ));
    }
    out.push_str("</table>");
    out
}

pub async fn incident_page(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let Some(id) = IncidentId::parse(&id) else {
        return (StatusCode::BAD_REQUEST, "invalid incident id").into_response();
    };
    let inc = match s.store.incident(&id) {
        Ok(Some(i)) => i,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such incident").into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut body = format!(
        "<h2>{} — {}</h2><p>status <b class={st}>{st}</b>, opened {}</p><h3>Root-cause ranking</h3><table><tr><th>#</th><th>service</th><th>metric</th><th>score</th><th>evidence</th></tr>",
        esc(inc.id.as_str()),
        esc(&inc.title),
        inc.opened_at,
        st = inc.status.as_str()
    );
    for (k, c) in inc.ranking.iter().take(5).enumerate() {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td></tr>",
            k + 1,
            esc(&c.service),
            esc(&c.metric),
            c.score,
            esc(&c.evidence.join("; "))
        ));
    }
    body.push_str(
        "</table><h3>Journal</h3><table><tr><th>time</th><th>event</th><th>what</th></tr>",
    );
    if let Ok(j) = s.store.journal(&JournalQuery {
        incident: Some(id),
        limit: 10_000,
        ..Default::default()
    }) {
        for e in j {
            body.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                e.ts,
                e.event.kind(),
                esc(&e.event.summary())
            ));
        }
    }
    body.push_str("</table>");
    page(inc.id.as_str(), &s.config.platform_name, &body).into_response()
}

pub async fn login_form(State(s): State<ApiState>) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>log in — warden</title><style>{STYLE}</style></head><body>\
         <h1>{}</h1><form method=post action=/login><label>API token <input type=password name=token autofocus></label> \
         <button>log in</button></form></body></html>",
        esc(&s.config.platform_name)
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(State(s): State<ApiState>, Form(f): Form<LoginForm>) -> Response {
    if s.tokens.check(&f.token).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            Html("<p>invalid token. <a href=/login>try again</a></p>"),
        )
            .into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        f.token.trim()
    );
    let mut headers = HeaderMap::new();
    if let Ok(v) = cookie.parse() {
        headers.insert(header::SET_COOKIE, v);
    }
    (headers, Redirect::to("/")).into_response()
}

pub async fn logout() -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0").parse() {
        headers.insert(header::SET_COOKIE, v);
    }
    (headers, Redirect::to("/login")).into_response()
}
