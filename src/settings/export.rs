//! Downloads of the audit log (CSV and JSON), served by the server with a proper file name and
//! content type. Superusers only, like the log itself.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;

use crate::auth::guard::require_superuser_of;
use crate::auth::session::RequestUser;
use crate::error::AppError;
use crate::policy::audit::{AuditFilter, AuditRow};
use crate::policy::store::PolicyStore;
use crate::policy::value::canonical_json;

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
enum Format {
    Csv,
    Json,
}

pub async fn export_csv(
    state: State<PolicyStore>,
    user: Option<Extension<RequestUser>>,
    q: Query<ExportQuery>,
) -> Result<Response, AppError> {
    export(state, user, q, Format::Csv).await
}

pub async fn export_json(
    state: State<PolicyStore>,
    user: Option<Extension<RequestUser>>,
    q: Query<ExportQuery>,
) -> Result<Response, AppError> {
    export(state, user, q, Format::Json).await
}

async fn export(
    State(store): State<PolicyStore>,
    user: Option<Extension<RequestUser>>,
    Query(q): Query<ExportQuery>,
    format: Format,
) -> Result<Response, AppError> {
    require_superuser_of(user.as_ref().map(|Extension(u)| u))?;
    let filter = AuditFilter::from_fields(q.key, q.actor, q.from, q.to, None, Some(EXPORT_LIMIT));
    let rows = store.history(&filter).await?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let (content_type, ext, body) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv", to_csv(&rows)?),
        Format::Json => (
            "application/json",
            "json",
            serde_json::to_string_pretty(&rows).map_err(|e| AppError::Internal(format!("cannot write JSON: {e}")))?,
        ),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"runtime-policy-audit-{stamp}.{ext}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

/// A field a spreadsheet would run as a formula gets a leading `'`. No CSV library does this:
/// it is about the reader, not the format.
fn defuse(s: &str) -> String {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err();
    if formula {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

pub fn to_csv(rows: &[AuditRow]) -> Result<String, AppError> {
    let failed = |e: &dyn std::fmt::Display| AppError::Internal(format!("cannot write CSV: {e}"));
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    w.write_record([
        "id",
        "at",
        "key",
        "action",
        "actor_id",
        "actor_email",
        "from",
        "to",
        "reason",
        "policy_revision",
        "key_version",
        "reverted_audit_id",
        "from_effective",
        "from_source",
        "to_effective",
        "to_source",
        "change_set_id",
    ])
    .map_err(|e| failed(&e))?;
    for r in rows {
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(canonical_json).unwrap_or_default();
        let fields = [
            r.id.to_string(),
            r.at.clone(),
            r.key.clone(),
            r.action_label().to_string(),
            r.actor_id.map(|i| i.to_string()).unwrap_or_default(),
            r.actor_email.clone(),
            json(&r.from_value),
            json(&r.to_value),
            r.reason.clone().unwrap_or_default(),
            r.policy_revision.to_string(),
            r.key_version.to_string(),
            r.reverted_audit_id.map(|i| i.to_string()).unwrap_or_default(),
            json(&r.from_effective),
            r.from_source.clone().unwrap_or_default(),
            json(&r.to_effective),
            r.to_source.clone().unwrap_or_default(),
            r.change_set_id.map(|i| i.to_string()).unwrap_or_default(),
        ];
        w.write_record(fields.iter().map(|f| defuse(f))).map_err(|e| failed(&e))?;
    }
    let bytes = w.into_inner().map_err(|e| failed(&e))?;
    String::from_utf8(bytes).map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::audit::AuditAction;
    use serde_json::json;

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        let row = AuditRow {
            id: 1,
            key: "upload.allowed_extensions".into(),
            action: AuditAction::Update,
            actor_id: Some(2),
            actor_email: "a@example.com".into(),
            at: "2026-01-01T00:00:00.000000Z".into(),
            from_value: None,
            to_value: Some(json!(["pdf", "txt"])),
            reason: Some("=cmd, \"quoted\"".into()),
            policy_revision: 3,
            key_version: 1,
            reverted_audit_id: None,
            from_effective: Some(json!(["pdf"])),
            from_source: Some("default".into()),
            to_effective: Some(json!(["pdf", "txt"])),
            to_source: Some("admin".into()),
            change_set_id: None,
        };
        let csv = to_csv(&[row]).unwrap();
        assert!(csv.starts_with("id,at,key,action,"), "{csv}");
        assert!(csv.ends_with("\r\n"), "{csv:?}");
        let line = csv.lines().nth(1).unwrap();
        assert!(line.contains(r#""[""pdf"",""txt""]""#), "{line}");
        assert!(line.contains(r#""'=cmd, ""quoted""""#), "{line}");
        assert!(line.ends_with(r#","[""pdf""]",default,"[""pdf"",""txt""]",admin,"#), "{line}");
        assert_eq!(defuse("-5"), "-5");
        assert_eq!(defuse("-1+1+cmd|' /C calc'!A0"), "'-1+1+cmd|' /C calc'!A0");
        assert_eq!(defuse("\tx"), "'\tx");
        // A tab-led field is also quoted by the writer only when it needs to be; the defused
        // form never starts with a formula character.
        let one = |s: &str| {
            let r = AuditRow {
                reason: Some(s.into()),
                ..serde_json::from_value::<AuditRow>(json!({
                    "id": 1, "key": "k", "action": "update", "actor_id": null, "actor_email": "a", "at": "t",
                    "from_value": null, "to_value": null, "reason": null, "policy_revision": 1, "key_version": 1,
                    "reverted_audit_id": null
                }))
                .unwrap()
            };
            to_csv(&[r]).unwrap().lines().nth(1).unwrap().split(',').nth(8).unwrap().to_string()
        };
        assert_eq!(one("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(one("plain"), "plain");
    }
}
