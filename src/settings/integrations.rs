//! The integrations section: personal API tokens (created for the signed-in superuser and shown
//! once, listed with scopes, expiry and last use, revoked), webhooks (registered, sent a test,
//! disabled) and the delivery log (status, attempts, last answer or error, redelivery).

use leptos::prelude::*;

use super::api::{integrations_data, IntegrationAction};
use super::types::{IntegrationsPage, Section};
use crate::error::AppError;
use crate::ui::{show_time, ErrorText, FormOutcome};

/// The section's data, loaded only while it is shown. Made by the settings area.
#[derive(Clone, Copy)]
pub struct IntegrationsData(pub Resource<Result<Option<IntegrationsPage>, AppError>>);

impl IntegrationsData {
    pub fn new(shown: Memo<bool>) -> IntegrationsData {
        IntegrationsData(Resource::new(
            move || shown.get(),
            |shown| async move {
                if shown {
                    integrations_data().await.map(Some)
                } else {
                    Ok(None)
                }
            },
        ))
    }
}

/// A small form posting one action with its hidden fields and a button.
fn action_button(
    act: ServerAction<IntegrationAction>,
    action: &'static str,
    id: Option<i64>,
    name: Option<String>,
    label: String,
    testid: String,
) -> impl IntoView {
    view! {
        <ActionForm action=act attr:class="inline-form">
            <input type="hidden" name="action" value=action />
            {id.map(|id| view! { <input type="hidden" name="id" value=id /> })}
            {name.map(|n| view! { <input type="hidden" name="name" value=n /> })}
            <button type="submit" class="button button--secondary" data-testid=testid>{label}</button>
        </ActionForm>
    }
}

#[component]
pub fn Integrations() -> impl IntoView {
    let IntegrationsData(page) = expect_context::<IntegrationsData>();
    let act = ServerAction::<IntegrationAction>::new();
    view! {
        <FormOutcome testid="integration-outcome" />
        <NewToken />
        <h2>"Personal API tokens"</h2>
        <p class="muted">
            "A token acts for you on /api/v1/policy with its scopes (policy:read always). Changes it makes are audited as token:NAME (you)."
        </p>
        <TokenForm />
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <ErrorText error=e /> }.into_any(),
                    Ok(None) => view! { <p class="loading">"Loading…"</p> }.into_any(),
                    Ok(Some(p)) => lists(p, act).into_any(),
                }
            })}
        </Transition>
        <h2>"Register a webhook"</h2>
        <ActionForm action=act attr:class="audit-filters">
            <input type="hidden" name="action" value="add_webhook" />
            <label>"URL" <input type="url" name="url" required data-testid="webhook-url" /></label>
            <label>"Secret (16+ characters)" <input type="password" name="secret" required minlength="16" data-testid="webhook-secret" /></label>
            <label>
                "Events (blank: all)"
                <input type="text" name="events" placeholder="policy.changed run.created" data-testid="webhook-events" />
            </label>
            <button type="submit" class="button" data-testid="webhook-add">"Register"</button>
        </ActionForm>
        <p><a href=Section::Integrations.href()>"Reload"</a></p>
    }
}

/// An island: the token form sends itself (a new token never goes into an address) by
/// XMLHttpRequest, keeps the token in the tab's store for the next page to show once, then reads
/// the section again with the outcome in its address. Not sent this way (no JavaScript yet), the
/// form posts as it is and the page says that a token needs JavaScript.
#[island]
fn TokenForm() -> impl IntoView {
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            let form = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok());
            if form.is_some_and(|f| send_token_form(&f).is_ok()) {
                ev.prevent_default();
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    view! {
        <form method="post" action=INTEGRATION_ACTION class="audit-filters" on:submit=on_submit>
            <input type="hidden" name="action" value="create_token" />
            <label>"Name" <input type="text" name="name" required maxlength="64" data-testid="token-name" /></label>
            <label><input type="checkbox" name="scope_write" value="on" data-testid="token-write" />" policy:write"</label>
            <label><input type="checkbox" name="scope_audit" value="on" />" audit:read"</label>
            <label>"Expires in (days, optional)" <input type="number" name="expires_in_days" min="1" max="3650" /></label>
            <button type="submit" class="button" data-testid="token-create">"Create token"</button>
        </form>
    }
}

/// Where the integrations forms post (the server function's address).
const INTEGRATION_ACTION: &str = <IntegrationAction as leptos::server_fn::ServerFn>::PATH;

/// Posts the token form as the server function reads it (URL-encoded) and asks for JSON.
#[cfg(feature = "hydrate")]
fn send_token_form(form: &web_sys::HtmlFormElement) -> Result<(), leptos::wasm_bindgen::JsValue> {
    use super::types::IntegrationOutcome;
    use leptos::wasm_bindgen::{closure::Closure, JsCast};

    let data = web_sys::FormData::new_with_form(form)?;
    let body = String::from(web_sys::UrlSearchParams::new_with_str_sequence_sequence(&data)?.to_string());
    let xhr = web_sys::XmlHttpRequest::new()?;
    xhr.open("POST", INTEGRATION_ACTION)?;
    xhr.set_request_header("Accept", "application/json")?;
    xhr.set_request_header("Content-Type", "application/x-www-form-urlencoded")?;
    let request = xhr.clone();
    let on_end = Closure::once(move || {
        let answer = request.response_text().ok().flatten().unwrap_or_default();
        let (ok, message) = match serde_json::from_str::<IntegrationOutcome>(&answer) {
            Ok(o) => {
                if let Some(secret) = o.secret {
                    super::store::set(super::store::NEW_TOKEN, Some(&secret));
                }
                (o.ok, o.message)
            }
            Err(_) => {
                (false, format!("The token was not created (HTTP {}); try again.", request.status().unwrap_or(0)))
            }
        };
        let notice = if ok { "done" } else { "error" };
        follow(&format!(
            "{}?notice={notice}&msg={}",
            Section::Integrations.href(),
            crate::paths::encode_query(&message)
        ));
    });
    xhr.set_onloadend(Some(on_end.as_ref().unchecked_ref()));
    on_end.forget();
    xhr.send_with_opt_str(Some(&body))
}

/// Opens `href` as a click on a link would, so the page's navigation swaps it in place.
#[cfg(feature = "hydrate")]
fn follow(href: &str) {
    {
        use leptos::wasm_bindgen::JsCast;
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
        let (Ok(a), Some(body)) = (doc.create_element("a"), doc.body()) else { return };
        let _ = a.set_attribute("href", href);
        let _ = body.append_child(&a);
        if let Ok(a) = a.dyn_into::<web_sys::HtmlElement>() {
            a.click();
            a.remove();
        }
    }
}

/// An island: the token just created, shown once (taken from the tab's store).
#[island]
fn NewToken() -> impl IntoView {
    let token = RwSignal::new(None::<String>);
    Effect::new(move |_| token.set(super::store::take(super::store::NEW_TOKEN)));
    move || {
        token.get().map(|s| {
            view! {
                <p class="notice-banner" role="status">
                    "The new token: " <code data-testid="new-token">{s}</code>
                </p>
            }
        })
    }
}

fn lists(p: IntegrationsPage, act: ServerAction<IntegrationAction>) -> impl IntoView {
    let tokens = p
        .tokens
        .into_iter()
        .map(|t| {
            let state = match (&t.revoked_at, &t.expires_at) {
                (Some(at), _) => format!("revoked {}", show_time(at)),
                (None, Some(at)) => format!("expires {}", show_time(at)),
                (None, None) => "active".into(),
            };
            let live = t.revoked_at.is_none();
            let name = t.name.clone();
            view! {
                <tr data-testid=format!("token-{}", t.name)>
                    <td><code>{t.name.clone()}</code></td>
                    <td>{t.owner}</td>
                    <td>{t.scopes}</td>
                    <td>{state}</td>
                    <td>{t.last_used_at.as_deref().map(show_time).unwrap_or_else(|| "never".into())}</td>
                    <td>
                        {live.then(|| action_button(act, "revoke_token", None, Some(name.clone()), "Revoke".into(), format!("revoke-{name}")))}
                    </td>
                </tr>
            }
        })
        .collect_view();
    let hooks = p
        .webhooks
        .into_iter()
        .map(|w| {
            let live = w.disabled_at.is_none();
            view! {
                <tr data-testid=format!("webhook-{}", w.id)>
                    <td>{w.id}</td>
                    <td><code>{w.url}</code></td>
                    <td>{w.events}</td>
                    <td>{w.disabled_at.as_deref().map(|d| format!("disabled {}", show_time(d))).unwrap_or_else(|| "active".into())}</td>
                    <td>
                        {live
                            .then(|| {
                                view! {
                                    {action_button(act, "test_webhook", Some(w.id), None, "Send test".into(), format!("test-webhook-{}", w.id))}
                                    {action_button(act, "disable_webhook", Some(w.id), None, "Disable".into(), format!("disable-webhook-{}", w.id))}
                                }
                            })}
                    </td>
                </tr>
            }
        })
        .collect_view();
    let deliveries = p
        .deliveries
        .into_iter()
        .map(|d| {
            let status = d.status.clone();
            view! {
                <tr data-testid=format!("delivery-{}", d.id) data-status=status>
                    <td>{d.id}</td>
                    <td>{d.webhook_id}</td>
                    <td>{d.event}</td>
                    <td>{d.status}</td>
                    <td>{d.attempts}</td>
                    <td>{d.last_status.map(|s| s.to_string()).unwrap_or_else(|| "-".into())}</td>
                    <td>{d.last_error.unwrap_or_default()}</td>
                    <td>{action_button(act, "redeliver", Some(d.id), None, "Redeliver".into(), format!("redeliver-{}", d.id))}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-wrap">
            <table class="audit" data-testid="tokens-table">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Owner"</th>
                        <th scope="col">"Scopes"</th>
                        <th scope="col">"State"</th>
                        <th scope="col">"Last used"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>{tokens}</tbody>
            </table>
        </div>
        <h2>"Webhooks"</h2>
        <div class="table-wrap">
            <table class="audit" data-testid="webhooks-table">
                <thead>
                    <tr>
                        <th scope="col">"Id"</th>
                        <th scope="col">"URL"</th>
                        <th scope="col">"Events"</th>
                        <th scope="col">"State"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>{hooks}</tbody>
            </table>
        </div>
        <h2>"Deliveries"</h2>
        <div class="table-wrap">
            <table class="audit" data-testid="deliveries-table">
                <thead>
                    <tr>
                        <th scope="col">"Id"</th>
                        <th scope="col">"Webhook"</th>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Attempts"</th>
                        <th scope="col">"Last answer"</th>
                        <th scope="col">"Last error"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>{deliveries}</tbody>
            </table>
        </div>
    }
}
