//! Four-eyes review. A change set that touches a key the registry marks for review
//! ([`KeySpec::needs_review`]) becomes a change request instead of being applied; another
//! superuser, never its author, approves it (applying it as a change set, atomically with the
//! request's row) or rejects it; the author may withdraw it. Every step is an append-only event.
//! A request whose keys changed since it was made is stale: approval is refused and says what
//! changed.

use chrono::Utc;
use sqlx::{Any, Row, Transaction};

use super::change_set::{
    ChangeRequest, ChangeSet, ChangeSetKind, ChangeSetOutcome, KeyChange, Proposal, RequestEvent, RequestStatus, Target,
};
use super::registry::spec;
use super::store::{Actor, PolicyStore};
use super::value::{canonical_json, ValidationError};
use crate::db::{format_ts, parse_stored};
use crate::error::AppError;

/// The most characters of a decision's comment.
pub const MAX_COMMENT_CHARS: usize = 500;

/// An approval being applied: the request and the version it was read at.
pub struct Approval {
    pub request_id: i64,
    pub request_version: i64,
    pub comment: Option<String>,
}

/// Whether two actors are the same person: the same user id, or (CLI operators, who have
/// none) the same name.
fn same_person(author_id: Option<i64>, author_email: &str, actor: &Actor) -> bool {
    match (author_id, actor.id) {
        (Some(a), Some(b)) => a == b,
        _ => author_email == actor.email,
    }
}

fn check_comment(comment: Option<&str>, required: bool) -> Result<Option<String>, AppError> {
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    match comment {
        None if required => Err(ValidationError::new("comment", "is required: say why").into()),
        None => Ok(None),
        Some(c) if c.chars().count() > MAX_COMMENT_CHARS => Err(ValidationError::new(
            "comment",
            format!("must be at most {MAX_COMMENT_CHARS} characters, got {}", c.chars().count()),
        )
        .into()),
        Some(c) if c.chars().any(|ch| ch.is_control() && ch != '\t' && ch != '\n') => {
            Err(ValidationError::new("comment", "must not contain control characters").into())
        }
        Some(c) => Ok(Some(c.to_string())),
    }
}

async fn add_event(
    tx: &mut Transaction<'static, Any>,
    request_id: i64,
    action: &str,
    actor: &Actor,
    at: &str,
    comment: Option<&str>,
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO policy_change_request_events (request_id, action, actor_id, actor_email, at, comment)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(request_id)
    .bind(action)
    .bind(actor.id)
    .bind(&actor.email)
    .bind(at)
    .bind(comment.map(str::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Refuses an approval whose request was decided or edited since it was read. Called in the
/// applying transaction after the revision bump, so approvals of one request are serialised and
/// the second is told it was decided, not that its keys changed.
pub(super) async fn check_still_open(tx: &mut Transaction<'static, Any>, approval: &Approval) -> Result<(), AppError> {
    let row = sqlx::query("SELECT status, version FROM policy_change_requests WHERE id = $1")
        .bind(approval.request_id)
        .fetch_optional(&mut **tx)
        .await?;
    let open = match row {
        Some(r) => {
            r.try_get::<String, _>("status")? == "open" && r.try_get::<i64, _>("version")? == approval.request_version
        }
        None => false,
    };
    if open {
        Ok(())
    } else {
        Err(AppError::Conflict(format!(
            "change request {} was decided or edited while it was being approved; reload it",
            approval.request_id
        )))
    }
}

/// Marks an approved request applied by change set `change_set_id`, inside the transaction
/// that applies it; refused when the request was decided or edited since it was read.
pub(super) async fn record_approval(
    tx: &mut Transaction<'static, Any>,
    approval: &Approval,
    approver: &Actor,
    now: &str,
    change_set_id: i64,
) -> Result<(), AppError> {
    let done = sqlx::query(
        "UPDATE policy_change_requests
         SET status = 'applied', version = version + 1, decided_by = $1, decided_at = $2, decision_comment = $3,
             applied_change_set_id = $4
         WHERE id = $5 AND status = 'open' AND version = $6",
    )
    .bind(&approver.email)
    .bind(now)
    .bind(approval.comment.clone())
    .bind(change_set_id)
    .bind(approval.request_id)
    .bind(approval.request_version)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(AppError::Conflict(format!(
            "change request {} was decided or edited while it was being approved; reload it",
            approval.request_id
        )));
    }
    add_event(tx, approval.request_id, "approved", approver, now, approval.comment.as_deref()).await?;
    add_event(tx, approval.request_id, "applied", approver, now, None).await?;
    let payload = serde_json::json!({
        "request": approval.request_id, "decision": "approved", "by": approver.email,
        "comment": approval.comment, "change_set": change_set_id,
    });
    super::webhooks::enqueue(tx, "change_request.decided", &payload).await
}

/// What is approved is exactly what was shown: each change as the admin value it makes, against
/// the version it was made at (a pin becomes the value it pinned).
fn approvable(lines: &[super::change_set::DiffLine]) -> Vec<KeyChange> {
    lines
        .iter()
        .map(|l| KeyChange {
            key: l.key.clone(),
            target: match &l.to_admin {
                Some(v) => Target::Value(v.clone()),
                None => Target::Reset,
            },
            expected_version: Some(l.version - 1),
        })
        .collect()
}

const REQUEST_COLUMNS: &str =
    "id, author_id, author_email, created_at, reason, kind, restored_revision, restored_run, \
     changes, status, version, decided_by, decided_at, decision_comment";

fn request_from_row(r: &sqlx::any::AnyRow) -> Result<ChangeRequest, AppError> {
    let kind = match r.try_get::<String, _>("kind")?.as_str() {
        "restore_revision" => {
            ChangeSetKind::RestoreRevision(r.try_get::<Option<i64>, _>("restored_revision")?.unwrap_or(0))
        }
        "restore_run" => ChangeSetKind::RestoreRun(r.try_get::<Option<i64>, _>("restored_run")?.unwrap_or(0)),
        _ => ChangeSetKind::Apply,
    };
    let changes: Vec<KeyChange> = serde_json::from_str(&r.try_get::<String, _>("changes")?)
        .map_err(|e| AppError::Internal(format!("policy_change_requests.changes does not parse: {e}")))?;
    Ok(ChangeRequest {
        id: r.try_get("id")?,
        author_id: r.try_get("author_id")?,
        author_email: r.try_get("author_email")?,
        created_at: r.try_get("created_at")?,
        reason: r.try_get("reason")?,
        kind,
        changes,
        status: parse_stored(
            "policy_change_requests.status",
            &r.try_get::<String, _>("status")?,
            RequestStatus::parse,
        )?,
        version: r.try_get("version")?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
        decision_comment: r.try_get("decision_comment")?,
        events: Vec::new(),
        preview: None,
    })
}

impl PolicyStore {
    /// Applies a change set, or opens a change request when it touches a key that needs review.
    /// A request must be applicable when made: it is judged as a dry run first (bad values,
    /// stale versions and the cross-key rule are refused now, and a set that changes nothing
    /// opens nothing). It records each key's admin version, so approval is refused as stale
    /// when a key changed meanwhile.
    pub async fn propose(&self, actor: &Actor, set: &ChangeSet, kind: ChangeSetKind) -> Result<Proposal, AppError> {
        self.propose_with(actor, set, kind, false).await
    }

    /// [`PolicyStore::propose`]; with `always`, a request is opened even when no key needs
    /// review (a second pair of eyes asked for).
    pub async fn propose_with(
        &self,
        actor: &Actor,
        set: &ChangeSet,
        kind: ChangeSetKind,
        always: bool,
    ) -> Result<Proposal, AppError> {
        let needs = |key: &str| always || spec(key).is_some_and(|s| s.needs_review());
        if !set.changes.iter().any(|c| needs(&c.key)) {
            return Ok(Proposal::Applied(self.apply_change_set(actor, set, kind, false).await?));
        }
        // Judged on what would really change: a restore names every key, most unchanged.
        let lines = match self.apply_change_set(actor, set, kind, true).await? {
            ChangeSetOutcome::Preview { lines } => lines,
            other => return Ok(Proposal::Applied(other)),
        };
        let reviewed: Vec<String> = lines.iter().filter(|l| needs(&l.key)).map(|l| l.key.clone()).collect();
        if reviewed.is_empty() {
            return Ok(Proposal::Applied(self.apply_change_set(actor, set, kind, false).await?));
        }
        let changes = approvable(&lines);
        let keys: Vec<String> = changes.iter().filter(|c| reviewed.contains(&c.key)).map(|c| c.key.clone()).collect();
        let (restored_revision, restored_run) = match kind {
            ChangeSetKind::Apply => (None, None),
            ChangeSetKind::RestoreRevision(n) => (Some(n), None),
            ChangeSetKind::RestoreRun(r) => (None, Some(r)),
        };
        let now = format_ts(Utc::now());
        let changes_json = serde_json::to_value(&changes)
            .map_err(|e| AppError::Internal(format!("cannot write the request's changes: {e}")))?;
        let mut tx = self.db.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO policy_change_requests
                 (author_id, author_email, created_at, reason, kind, restored_revision, restored_run, changes, status, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', 1) RETURNING id",
        )
        .bind(actor.id)
        .bind(&actor.email)
        .bind(&now)
        .bind(set.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string))
        .bind(kind.as_str())
        .bind(restored_revision)
        .bind(restored_run)
        .bind(canonical_json(&changes_json))
        .fetch_one(&mut *tx)
        .await?;
        add_event(&mut tx, id, "requested", actor, &now, None).await?;
        let payload = serde_json::json!({ "request": id, "author": actor.email, "keys": keys, "reason": set.reason });
        super::webhooks::enqueue(&mut tx, "change_request.opened", &payload).await?;
        tx.commit().await?;
        tracing::info!(request = id, actor = %actor.email, keys = ?keys, "change request opened");
        self.db.metrics.inc("policy_change_requests_total", &[("step", "requested")]);
        Ok(Proposal::Requested { id, keys })
    }

    /// One change request with its events.
    pub async fn request(&self, id: i64) -> Result<ChangeRequest, AppError> {
        let row = sqlx::query(&format!("SELECT {REQUEST_COLUMNS} FROM policy_change_requests WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("change request {id} does not exist")))?;
        let mut request = request_from_row(&row)?;
        request.events = self.events(id).await?;
        Ok(request)
    }

    async fn events(&self, id: i64) -> Result<Vec<RequestEvent>, AppError> {
        let rows = sqlx::query(
            "SELECT action, actor_email, at, comment FROM policy_change_request_events WHERE request_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RequestEvent {
                    action: r.try_get("action")?,
                    actor_email: r.try_get("actor_email")?,
                    at: r.try_get("at")?,
                    comment: r.try_get("comment")?,
                })
            })
            .collect()
    }

    /// Open requests first (oldest first), then the newest decided ones; each open one with
    /// what approving it would change now, or why it would be refused.
    pub async fn requests(&self, decided: i64) -> Result<Vec<ChangeRequest>, AppError> {
        let open = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM policy_change_requests WHERE status = 'open' ORDER BY id LIMIT 200"
        ))
        .fetch_all(&self.db.pool)
        .await?;
        let closed = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM policy_change_requests WHERE status <> 'open' ORDER BY id DESC LIMIT $1"
        ))
        .bind(decided.clamp(0, 500))
        .fetch_all(&self.db.pool)
        .await?;
        let mut out = Vec::with_capacity(open.len() + closed.len());
        for row in open.iter().chain(&closed) {
            let mut r = request_from_row(row)?;
            r.events = self.events(r.id).await?;
            if r.status == RequestStatus::Open {
                let set = ChangeSet { reason: None, changes: r.changes.clone(), expected_revision: None };
                let preview = self.apply_change_set(&Actor::user(0, "preview"), &set, r.kind, true).await;
                r.preview = Some(match preview {
                    Ok(ChangeSetOutcome::Preview { lines }) => Ok(lines),
                    Ok(_) => Ok(Vec::new()),
                    Err(e) => Err(e.to_string()),
                });
            }
            out.push(r);
        }
        Ok(out)
    }

    /// How many requests wait for a decision.
    pub async fn open_request_count(&self) -> Result<i64, AppError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM policy_change_requests WHERE status = 'open'")
            .fetch_one(&self.db.pool)
            .await?)
    }

    /// Approves and applies request `id` as one change set, in the transaction that marks it
    /// applied. Refused for its author (403), for a request no longer open (409), and as stale
    /// when a key changed since it was requested (409, and a `stale` event saying what changed).
    pub async fn approve(&self, actor: &Actor, id: i64, comment: Option<&str>) -> Result<ChangeSetOutcome, AppError> {
        let comment = check_comment(comment, false)?;
        let request = self.request(id).await?;
        if same_person(request.author_id, &request.author_email, actor) {
            return Err(AppError::Forbidden(format!(
                "you made change request {id}: another superuser must approve it"
            )));
        }
        if request.status != RequestStatus::Open {
            return Err(AppError::Conflict(format!("change request {id} is {} already", request.status.as_str())));
        }
        let set = ChangeSet {
            reason: Some(match &request.reason {
                Some(r) => format!("{r} (change request {id})"),
                None => format!("change request {id}"),
            }),
            changes: request.changes.clone(),
            expected_revision: None,
        };
        let approval = Approval { request_id: id, request_version: request.version, comment };
        match self.apply_change_set_with(actor, &set, request.kind, false, Some(approval)).await {
            Ok(outcome) => {
                self.db.metrics.inc("policy_change_requests_total", &[("step", "applied")]);
                tracing::info!(request = id, approver = %actor.email, "change request approved and applied");
                Ok(outcome)
            }
            Err(AppError::Conflict(what)) if what.contains("changed since you read them") => {
                let mut tx = self.db.begin_write().await?;
                add_event(&mut tx, id, "stale", actor, &format_ts(Utc::now()), Some(&what)).await?;
                tx.commit().await?;
                self.db.metrics.inc("policy_change_requests_total", &[("step", "stale")]);
                Err(AppError::Conflict(format!(
                    "change request {id} is stale, nothing applied: {what}. Its author can withdraw it and request again"
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces the changes and reason of the author's own open request `id` (for instance after
    /// it went stale), judged and recorded as when it was made. Any decision in flight on the
    /// old content is refused (the request's version moves on).
    pub async fn edit_request(&self, actor: &Actor, id: i64, set: &ChangeSet) -> Result<(), AppError> {
        let request = self.request(id).await?;
        if !same_person(request.author_id, &request.author_email, actor) {
            return Err(AppError::Forbidden(format!("only its author may edit change request {id}")));
        }
        if request.status != RequestStatus::Open {
            return Err(AppError::Conflict(format!("change request {id} is {} already", request.status.as_str())));
        }
        let lines = match self.apply_change_set(actor, set, request.kind, true).await? {
            ChangeSetOutcome::Preview { lines } => lines,
            _ => {
                return Err(AppError::invalid(
                    "changes",
                    "would change nothing: every value is already in force (withdraw the request instead)",
                ))
            }
        };
        let changes_json = serde_json::to_value(approvable(&lines))
            .map_err(|e| AppError::Internal(format!("cannot write the request's changes: {e}")))?;
        let now = format_ts(Utc::now());
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE policy_change_requests SET changes = $1, reason = $2, version = version + 1
             WHERE id = $3 AND status = 'open' AND version = $4",
        )
        .bind(canonical_json(&changes_json))
        .bind(set.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string))
        .bind(id)
        .bind(request.version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(AppError::Conflict(format!(
                "change request {id} changed while it was being edited; reload it"
            )));
        }
        add_event(&mut tx, id, "edited", actor, &now, None).await?;
        tx.commit().await?;
        self.db.metrics.inc("policy_change_requests_total", &[("step", "edited")]);
        Ok(())
    }

    /// Rejects request `id`, with a comment saying why; never by its author.
    pub async fn reject(&self, actor: &Actor, id: i64, comment: Option<&str>) -> Result<(), AppError> {
        let comment = check_comment(comment, true)?;
        let request = self.request(id).await?;
        if same_person(request.author_id, &request.author_email, actor) {
            return Err(AppError::Forbidden(format!(
                "you made change request {id}: withdraw it instead, or let another superuser decide"
            )));
        }
        self.close(actor, &request, "rejected", comment.as_deref()).await
    }

    /// Withdraws request `id`; only its author may.
    pub async fn withdraw(&self, actor: &Actor, id: i64, comment: Option<&str>) -> Result<(), AppError> {
        let comment = check_comment(comment, false)?;
        let request = self.request(id).await?;
        if !same_person(request.author_id, &request.author_email, actor) {
            return Err(AppError::Forbidden(format!("only its author may withdraw change request {id}")));
        }
        self.close(actor, &request, "withdrawn", comment.as_deref()).await
    }

    async fn close(
        &self,
        actor: &Actor,
        request: &ChangeRequest,
        status: &str,
        comment: Option<&str>,
    ) -> Result<(), AppError> {
        let now = format_ts(Utc::now());
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE policy_change_requests
             SET status = $1, version = version + 1, decided_by = $2, decided_at = $3, decision_comment = $4
             WHERE id = $5 AND status = 'open' AND version = $6",
        )
        .bind(status)
        .bind(&actor.email)
        .bind(&now)
        .bind(comment.map(str::to_string))
        .bind(request.id)
        .bind(request.version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(AppError::Conflict(format!(
                "change request {} is not open any more, or changed since it was read; reload it",
                request.id
            )));
        }
        add_event(&mut tx, request.id, status, actor, &now, comment).await?;
        let payload =
            serde_json::json!({ "request": request.id, "decision": status, "by": actor.email, "comment": comment });
        super::webhooks::enqueue(&mut tx, "change_request.decided", &payload).await?;
        tx.commit().await?;
        self.db.metrics.inc("policy_change_requests_total", &[("step", status)]);
        tracing::info!(request = request.id, actor = %actor.email, status, "change request closed");
        Ok(())
    }
}
