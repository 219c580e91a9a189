//! Downloads of the audit log (CSV and JSON), served by the server with a proper file name and
//! content type. Superusers only, like the log itself.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;

use super::api::audit_filter;
use super::audit::AuditRow;
use super::server::StoreError;
use super::value::canonical_json;
use crate::auth::server::RequestUser;
use crate::auth::Role;
use crate::server::AppState;

/// The most rows one download holds.
pub const EXPORT_LIMIT: i64 = 10_000;

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    pub key: Option<String>,
    pub actor: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Clone, Copy)]
pub enum Format {
    Csv,
    Json,
}

pub async fn export_csv(state: State<AppState>, user: Option<Extension<RequestUser>>, q: Query<ExportQuery>) -> Response {
    export(state, user, q, Format::Csv).await
}

pub async fn export_json(state: State<AppState>, user: Option<Extension<RequestUser>>, q: Query<ExportQuery>) -> Response {
    export(state, user, q, Format::Json).await
}

async fn export(
    State(state): State<AppState>,
    user: Option<Extension<RequestUser>>,
    Query(q): Query<ExportQuery>,
    format: Format,
) -> Response {
    match user.and_then(|Extension(u)| u.0) {
        None => return (StatusCode::UNAUTHORIZED, "Sign in first.").into_response(),
        Some(u) if u.role != Role::Superuser => return (StatusCode::FORBIDDEN, "This needs a superuser.").into_response(),
        Some(_) => {}
    }
    let filter = audit_filter(q.key, q.actor, q.from, q.to, None, Some(EXPORT_LIMIT));
    let rows = match state.policy.history(&filter).await {
        Ok(rows) => rows,
        Err(StoreError::Invalid(e)) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(e) => {
            tracing::error!("audit export failed: {e}");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal error; the server log has the details.").into_response();
        }
    };
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let (content_type, ext, body) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv", to_csv(&rows)),
        Format::Json => (
            "application/json",
            "json",
            serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".to_string()),
        ),
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"runtime-policy-audit-{stamp}.{ext}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

fn csv_field(s: &str) -> String {
    // Quote every field that needs it; a leading formula character is defused for spreadsheets.
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err();
    let s = if formula {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn to_csv(rows: &[AuditRow]) -> String {
    let mut out = String::from("id,at,key,action,actor_id,actor_email,from,to,reason,policy_revision,key_version,reverted_audit_id\r\n");
    for r in rows {
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(canonical_json).unwrap_or_default();
        let fields = [
            r.id.to_string(),
            r.at.clone(),
            r.key.clone(),
            r.action.clone(),
            r.actor_id.map(|i| i.to_string()).unwrap_or_default(),
            r.actor_email.clone(),
            json(&r.from_value),
            json(&r.to_value),
            r.reason.clone().unwrap_or_default(),
            r.policy_revision.to_string(),
            r.key_version.to_string(),
            r.reverted_audit_id.map(|i| i.to_string()).unwrap_or_default(),
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        let row = AuditRow {
            id: 1,
            key: "upload.allowed_extensions".into(),
            action: "update".into(),
            actor_id: Some(2),
            actor_email: "a@example.com".into(),
            at: "2026-01-01T00:00:00.000000Z".into(),
            from_value: None,
            to_value: Some(json!(["pdf", "txt"])),
            reason: Some("=cmd, \"quoted\"".into()),
            policy_revision: 3,
            key_version: 1,
            reverted_audit_id: None,
        };
        let csv = to_csv(&[row]);
        let line = csv.lines().nth(1).unwrap();
        assert!(line.contains(r#""[""pdf"",""txt""]""#), "{line}");
        assert!(line.contains(r#""'=cmd, ""quoted""""#), "{line}");
        assert_eq!(csv_field("-5"), "-5");
        assert_eq!(csv_field("-1+1+cmd|' /C calc'!A0"), "'-1+1+cmd|' /C calc'!A0");
        assert_eq!(csv_field("\tx"), "'\tx");
    }
}
