//! Runs: the run list with its creation form, and the run page with progress and the policy
//! snapshot beside today's baseline. Wire types are in `types.rs`; server functions in
//! `api.rs`; creation and the pages' queries in `server.rs`; claims in `claims.rs`; the worker
//! API in `http.rs`; the reference worker in `worker.rs`.

pub mod api;
#[cfg(feature = "ssr")]
pub mod batching;
#[cfg(feature = "ssr")]
pub mod events;
#[cfg(feature = "ssr")]
pub mod fleet;
pub mod fleet_view;
pub mod snapshot;
pub mod types;

#[cfg(feature = "ssr")]
pub mod claims;
#[cfg(feature = "ssr")]
pub mod cli;
#[cfg(feature = "ssr")]
pub mod http;
#[cfg(feature = "ssr")]
pub mod input;
#[cfg(feature = "ssr")]
pub mod provider;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod upload;
#[cfg(feature = "ssr")]
pub mod worker;

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_location, use_query_map};

use self::api::{get_run, list_runs, CreateRun};
use self::types::{RunDetail, RunSummary};
use crate::error::AppError;
use crate::paths::{run_href, RUNS, RUNS_UPLOAD};
use crate::ui::ErrorText;

/// Parent route of the run pages: any signed-in user; anyone else goes to sign in first.
/// Which runs a user sees is decided on the server, in every server function.
/// The run pages' data, made once per visit to the area: the router builds the page under the
/// signed-in check more than once while rendering on the server, and a page that made its own
/// data would load and send it each time.
#[derive(Clone, Copy)]
struct RunsData {
    create: ServerAction<CreateRun>,
    /// The list, loaded only on `/app/runs`.
    runs: Resource<Result<Option<Vec<RunSummary>>, AppError>>,
    /// One run, loaded only on `/app/runs/{id}` (`None` inside for an id that is not one).
    run: Resource<Result<Option<Option<RunDetail>>, AppError>>,
}

/// Which run page an address names: `None` for the list, `Some(None)` for an id that is not a
/// positive number.
fn run_page_of_path(path: &str) -> Option<Option<i64>> {
    let rest = path.strip_prefix(RUNS).unwrap_or_default().trim_matches('/');
    (!rest.is_empty()).then(|| rest.parse::<i64>().ok().filter(|id| *id > 0))
}

#[component]
pub fn RunsArea() -> impl IntoView {
    let location = use_location();
    let page = Memo::new(move |_| run_page_of_path(&location.pathname.read()));
    let create = ServerAction::<CreateRun>::new();
    let runs = Resource::new(
        move || (page.get().is_none(), create.version().get()),
        |(on_list, _)| async move {
            if on_list {
                list_runs().await.map(Some)
            } else {
                Ok(None)
            }
        },
    );
    let run = Resource::new(
        move || page.get(),
        |page| async move {
            match page {
                Some(Some(id)) => get_run(id).await.map(|d| Some(Some(d))),
                Some(None) => Ok(Some(None)),
                None => Ok(None),
            }
        },
    );
    provide_context(RunsData { create, runs, run });
    crate::auth::signed_in_area(false)
}

/// `/app/runs`: the runs the user may see, newest first, and a form that creates one.
#[component]
pub fn RunsPage() -> impl IntoView {
    let RunsData { create, runs, .. } = expect_context::<RunsData>();
    let error = move || create.value().get().and_then(|r| r.err()).map(|e| e.to_string());

    view! {
        <section class="runs" data-testid="runs-page">
            <h1>"Runs"</h1>
            {fleet_link()}
            <div class="run-form">
                <ActionForm action=create>
                    <label for="run-text">"Text to process: one block per paragraph (separate blocks with a blank line)"</label>
                    <textarea id="run-text" name="text" rows="8" required data-testid="run-text"></textarea>
                    <button type="submit" data-testid="run-create">
                        "Create run"
                    </button>
                </ActionForm>
                {move || {
                    error()
                        .map(|m| {
                            view! {
                                <p class="error" role="alert" data-testid="run-error">
                                    {m}
                                </p>
                            }
                        })
                }}
            </div>
            <UploadForm refused=use_query_map().get_untracked().get("upload_error") />
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Ok(Some(list)) => view! { <RunTable runs=list /> }.into_any(),
                        Ok(None) => view! { <p class="loading">"Loading…"</p> }.into_any(),
                        Err(error) => view! { <ErrorText error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Opens `href` with a page load (there is no router in the browser).
fn open_page(href: &str, _: leptos_router::NavigateOptions) {
    #[cfg(feature = "hydrate")]
    if let Some(w) = web_sys::window() {
        let _ = w.location().assign(href);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = href;
}

/// A run from documents. Without JavaScript the browser posts the form and is sent to the new
/// run (or back here with the error); with it, the files go by XMLHttpRequest so the page can
/// show the upload's progress.
///
/// An island (ARCHITECTURE.md): `refused` is the reason a plain form's upload was sent back
/// with, read from the address by the page; there is no router in the browser, so a new run
/// opens with a page load.
#[island]
fn UploadForm(refused: Option<String>) -> impl IntoView {
    let (error, set_error) = signal(refused);
    let (progress, set_progress) = signal(None::<(f64, f64)>);
    let navigate = open_page;
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            let Some(form) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok()) else {
                return;
            };
            ev.prevent_default();
            set_error.set(None);
            let done = move |result: Result<i64, String>| match result {
                Ok(id) => navigate(&run_href(id), Default::default()),
                Err(message) => {
                    set_progress.set(None);
                    set_error.set(Some(message));
                }
            };
            if let Err(message) = send_upload(&form, set_progress, done) {
                set_error.set(Some(message));
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (ev, &navigate, set_error, set_progress);
    };
    view! {
        <div class="run-form upload-form">
            <form method="post" action=RUNS_UPLOAD enctype="multipart/form-data" on:submit=on_submit>
                <label for="run-files">
                    "Or create a run from documents (txt, md, csv, html, pdf, docx; several at once): choose them or drop them here"
                </label>
                <input id="run-files" type="file" name="files" multiple required data-testid="run-files" />
                <button type="submit" data-testid="run-upload">
                    "Upload and create run"
                </button>
            </form>
            {move || {
                progress
                    .get()
                    .map(|(sent, total)| {
                        let percent = if total > 0.0 { (sent / total * 100.0).round() } else { 0.0 };
                        view! {
                            <p class="run-progress" data-testid="upload-progress">
                                <label for="upload-progress-bar">{format!("Uploading: {percent}%")}</label>
                                <progress id="upload-progress-bar" max="100" value=percent></progress>
                            </p>
                        }
                    })
            }}
            {move || {
                error
                    .get()
                    .map(|m| {
                        view! {
                            <p class="error" role="alert" data-testid="upload-error">
                                {m}
                            </p>
                        }
                    })
            }}
        </div>
    }
}

/// Refuses, before sending anything, files over the server's limits.
#[cfg(feature = "hydrate")]
fn check_upload_sizes(form: &web_sys::HtmlFormElement) -> Result<(), String> {
    use self::types::{MAX_FILE_BYTES, MAX_UPLOAD_BYTES};
    use leptos::wasm_bindgen::JsCast;
    let Some(files) = form
        .query_selector("input[type=file]")
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
        .and_then(|input| input.files())
    else {
        return Ok(());
    };
    let mib = |n: f64| format!("{:.1} MiB", n / (1u64 << 20) as f64);
    let mut total = 0.0;
    for i in 0..files.length() {
        let Some(file) = files.get(i) else { continue };
        if file.size() > MAX_FILE_BYTES as f64 {
            return Err(format!(
                "files: \"{}\" holds {}; at most {} per file",
                file.name(),
                mib(file.size()),
                mib(MAX_FILE_BYTES as f64)
            ));
        }
        total += file.size();
    }
    if total > MAX_UPLOAD_BYTES as f64 {
        return Err(format!(
            "files: the files hold {}; at most {} per upload",
            mib(total),
            mib(MAX_UPLOAD_BYTES as f64)
        ));
    }
    Ok(())
}

/// Sends the upload form by XMLHttpRequest (the one browser API that reports upload progress)
/// and calls `done` with the new run's id or the error to show.
#[cfg(feature = "hydrate")]
fn send_upload(
    form: &web_sys::HtmlFormElement,
    set_progress: WriteSignal<Option<(f64, f64)>>,
    done: impl FnOnce(Result<i64, String>) + 'static,
) -> Result<(), String> {
    use leptos::wasm_bindgen::closure::Closure;
    use leptos::wasm_bindgen::JsCast;
    let failed = |_| "The upload could not be sent.".to_string();
    check_upload_sizes(form)?;
    let data = web_sys::FormData::new_with_form(form).map_err(failed)?;
    let xhr = web_sys::XmlHttpRequest::new().map_err(failed)?;
    xhr.open("POST", RUNS_UPLOAD).map_err(failed)?;
    xhr.set_request_header("Accept", "application/json").map_err(failed)?;
    let on_progress = Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
        if e.length_computable() {
            set_progress.set(Some((e.loaded(), e.total())));
        }
    });
    xhr.upload().map_err(failed)?.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    on_progress.forget();
    let request = xhr.clone();
    let on_end = Closure::once(move || {
        let status = request.status().unwrap_or(0);
        let body = request.response_text().ok().flatten().unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let result = match (status, json.get("id").and_then(|v| v.as_i64())) {
            (201, Some(id)) => Ok(id),
            (0, _) => Err("The upload did not reach the server; try again.".to_string()),
            _ => Err(json
                .get("error")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| format!("The upload was refused (HTTP {status})."))),
        };
        done(result);
    });
    xhr.set_onloadend(Some(on_end.as_ref().unchecked_ref()));
    on_end.forget();
    xhr.send_with_opt_form_data(Some(&data)).map_err(failed)
}

#[component]
fn RunTable(runs: Vec<RunSummary>) -> impl IntoView {
    if runs.is_empty() {
        return view! { <p class="summary" data-testid="runs-empty">"No runs yet."</p> }.into_any();
    }
    view! {
        <table class="runs-table" data-testid="runs-table">
            <thead>
                <tr>
                    <th scope="col">"Run"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Blocks (done / failed / total)"</th>
                    <th scope="col">"Created by"</th>
                    <th scope="col">"Created at (UTC)"</th>
                    <th scope="col">"Policy revision"</th>
                </tr>
            </thead>
            <tbody>
                {runs
                    .into_iter()
                    .map(|r| {
                        view! {
                            <tr data-testid=format!("run-row-{}", r.id)>
                                <td>
                                    <A href=run_href(r.id)>{format!("#{}", r.id)}</A>
                                </td>
                                <td>
                                    <span class=format!("status status--{}", r.status)>{r.status.as_str()}</span>
                                </td>
                                <td>{format!("{} / {} / {}", r.blocks_done, r.blocks_failed, r.block_count)}</td>
                                <td>{r.created_by.clone()}</td>
                                <td>{r.created_at.clone()}</td>
                                <td>{r.policy_revision}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// `/app/runs/{id}`: progress, and the snapshot key by key with drift from today's baseline.
#[component]
pub fn RunPage() -> impl IntoView {
    let RunsData { run, .. } = expect_context::<RunsData>();
    view! {
        <LiveRefresh />
        <section class="run" data-testid="run-page">
            <p>
                <A href=RUNS>"All runs"</A>
            </p>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                // Errors are matched here rather than caught by an ErrorBoundary, which fails to
                // hydrate a page rendered with an error.
                {move || Suspend::new(async move {
                    match run.await {
                        Ok(Some(Some(detail))) => view! { <RunView detail /> }.into_any(),
                        Ok(Some(None)) => view! { <h1>"No such run"</h1> }.into_any(),
                        Ok(None) => view! { <p class="loading">"Loading…"</p> }.into_any(),
                        Err(e) => view! {
                            <h1>"Run not available"</h1>
                            <p class="error" role="alert" data-testid="run-error">
                                {e.to_string()}
                            </p>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Shows `content` to a signed-in superuser only (the server checks access either way).
fn for_superusers<V: IntoView + 'static>(content: impl Fn() -> V + Clone + Send + Sync + 'static) -> impl IntoView {
    let auth = use_context::<crate::auth::Auth>()?;
    Some(view! {
        <Transition fallback=|| ()>
            {move || {
                let content = content.clone();
                Suspend::new(async move {
                    let superuser = matches!(
                        auth.user.await, Ok(Some(u)) if u.role == crate::auth::types::Role::Superuser
                    );
                    superuser.then(content)
                })
            }}
        </Transition>
    })
}

/// For superusers: the fleet page.
fn fleet_link() -> impl IntoView {
    for_superusers(|| {
        view! {
            <p>
                <A href=crate::paths::FLEET>"Fleet: the workers and what they hold"</A>
            </p>
        }
    })
}

/// For superusers: the run's snapshot beside today's policy on the revisions page, where it can
/// be restored.
fn compare_link(run_id: i64) -> impl IntoView {
    let href = format!("{}?run={run_id}", crate::paths::settings_section("revisions"));
    for_superusers(move || {
        view! {
            <p>
                <a href=href.clone() data-testid="run-policy-compare">
                    "Compare this policy with today's, or restore it"
                </a>
            </p>
        }
    })
}

/// Seconds between two reads of an active run's page.
const POLL_SECS: u64 = 2;

/// The run page has no hydrated view: this island reads the page again every
/// [`POLL_SECS`] while the run is active (its status carries `data-run-active`) and puts the
/// new run section in place of the old one. It renders nothing.
#[island]
fn LiveRefresh() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    live::schedule();
}

#[cfg(feature = "hydrate")]
mod live {
    use leptos::wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::Element;

    const SECTION: &str = "[data-testid=run-page]";
    const ACTIVE: &str = "[data-run-active=true]";

    /// Starts polling the run section of the page now shown, at its address.
    pub fn schedule() {
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
        let Ok(Some(section)) = doc.query_selector(SECTION) else { return };
        let href = doc.location().and_then(|l| l.href().ok()).unwrap_or_default();
        wait(section, href);
    }

    fn wait(section: Element, href: String) {
        leptos::prelude::set_timeout(move || refresh(section, href), std::time::Duration::from_secs(super::POLL_SECS));
    }

    /// Reads the page's address again (as a parsed document) and swaps the run section, then
    /// waits for the next read. It stops once the run is finished, or once its section has left
    /// the page (another page was swapped in; that page's own island polls it), so a read
    /// started for one run never lands on another. While the keyboard focus is inside the
    /// section the swap waits for the next read, so the focused link is not taken away.
    fn refresh(section: Element, href: String) {
        if !section.is_connected() || !matches!(section.query_selector(ACTIVE), Ok(Some(_))) {
            return;
        }
        let Ok(xhr) = web_sys::XmlHttpRequest::new() else { return };
        xhr.set_response_type(web_sys::XmlHttpRequestResponseType::Document);
        if xhr.open("GET", &href).is_err() {
            return;
        }
        let answer = xhr.clone();
        let done = Closure::once_into_js(move || {
            if !section.is_connected() {
                return;
            }
            let focused =
                section.owner_document().and_then(|d| d.active_element()).is_some_and(|el| section.contains(Some(&el)));
            let fresh = answer.response_xml().ok().flatten().and_then(|d| d.query_selector(SECTION).ok().flatten());
            if let (Some(fresh), false) = (fresh, focused) {
                section.set_inner_html(&fresh.inner_html());
            }
            wait(section, href);
        });
        xhr.set_onloadend(Some(done.unchecked_ref()));
        let _ = xhr.send();
    }
}

#[component]
fn RunView(detail: RunDetail) -> impl IntoView {
    let s = detail.summary;
    let c = detail.counts;
    let active = matches!(s.status, self::types::RunStatus::Pending | self::types::RunStatus::Running);
    // While the run is active, LiveRefresh reads the page again every few seconds.
    let finished = c.done + c.failed;
    let drifted = detail.keys.iter().filter(|k| k.drift).count();
    let compare = compare_link(s.id);
    view! {
        <h1 data-testid="run-title">{format!("Run #{}", s.id)}</h1>
        <dl class="run-facts">
            <dt>"Status"</dt>
            <dd>
                <span class=format!("status status--{}", s.status) data-testid="run-status" data-run-active=active.to_string()>
                    {s.status.as_str()}
                </span>
            </dd>
            <dt>"Created"</dt>
            <dd>{format!("{} by {}", s.created_at, s.created_by)}</dd>
            <dt>"Policy revision"</dt>
            <dd>{s.policy_revision}</dd>
            <dt>"Snapshot SHA-256"</dt>
            <dd>
                <code>{detail.snapshot_sha256.clone()}</code>
            </dd>
        </dl>
        <h2>"Progress"</h2>
        <p class="run-progress">
            <label for="run-progress-bar">{format!("{finished} of {} blocks finished", s.block_count)}</label>
            <progress id="run-progress-bar" max=s.block_count value=finished></progress>
        </p>
        <p data-testid="run-counts">
            {format!("{} done, {} failed, {} claimed, {} pending", c.done, c.failed, c.claimed, c.pending)}
        </p>
        {active
            .then(|| {
                view! {
                    <p class="summary" data-testid="run-live">
                        {format!("In progress: this page updates itself every {POLL_SECS} seconds.")}
                    </p>
                }
            })}
        <RunEvents events=detail.events />
        <RunWorkers workers=detail.workers />
        <RunFiles files=detail.files />
        <RunBlocks blocks=detail.blocks total=s.block_count />
        <h2>"Policy snapshot"</h2>
        <p class="summary">
            "The policy this run was created under. It never changes; a change to the baseline applies to new runs only. "
            {if drifted == 0 {
                "Today's baseline matches it.".to_string()
            } else {
                format!("Today's baseline differs on {drifted} key(s), marked below.")
            }}
        </p>
        {compare}
        <table class="snapshot-table" data-testid="snapshot-table">
            <thead>
                <tr>
                    <th scope="col">"Key"</th>
                    <th scope="col">"In this run"</th>
                    <th scope="col">"Captured from"</th>
                    <th scope="col">"Today's baseline"</th>
                </tr>
            </thead>
            <tbody>
                {detail
                    .keys
                    .into_iter()
                    .map(|k| {
                        let key = k.key.clone();
                        view! {
                            <tr class:drift=k.drift data-testid=format!("snapshot-{key}")>
                                <th scope="row">
                                    <span class="key-label">{k.label.clone()}</span>
                                    <code class="key-name">{key.clone()}</code>
                                </th>
                                <td>
                                    <code data-testid=format!("snapshot-value-{key}") title=k.provenance.clone()>
                                        {k.provenance_short.clone()}
                                    </code>
                                </td>
                                <td data-testid=format!("snapshot-layer-{key}")>
                                    {if k.admin_version > 0 {
                                        format!("{} (admin version {})", k.captured_from, k.admin_version)
                                    } else {
                                        k.captured_from.to_string()
                                    }}
                                </td>
                                <td>
                                    {if k.drift {
                                        view! {
                                            <span class="drift-marker" data-testid=format!("drift-{key}")>
                                                <strong>"Drift: "</strong>
                                                "the baseline is now "
                                                <code>{k.baseline.clone().unwrap_or_default()}</code>
                                            </span>
                                        }
                                            .into_any()
                                    } else {
                                        view! { <span class="same">"same"</span> }.into_any()
                                    }}
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// A table's header row.
pub(crate) fn table_head(columns: &[&'static str]) -> impl IntoView {
    let cells = columns.iter().map(|c| view! { <th scope="col">{*c}</th> }).collect_view();
    view! {
        <thead>
            <tr>{cells}</tr>
        </thead>
    }
}

/// The documents a run was made from, with their block counts.
#[component]
fn RunFiles(files: Vec<self::types::RunFileView>) -> impl IntoView {
    (!files.is_empty()).then(|| {
        view! {
            <h2>"Files"</h2>
            <table class="runs-table" data-testid="run-files-table">
                {table_head(&["File", "Size (bytes)", "Blocks", "SHA-256"])}
                <tbody>
                    {files
                        .into_iter()
                        .enumerate()
                        .map(|(i, f)| {
                            view! {
                                <tr data-testid=format!("run-file-{i}")>
                                    <td>{f.name}</td>
                                    <td>{f.size_bytes}</td>
                                    <td data-testid=format!("run-file-blocks-{i}")>{f.block_count}</td>
                                    <td>
                                        <code title=f.sha256.clone()>{f.sha256.chars().take(12).collect::<String>()}</code>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        }
    })
}

/// The run's first blocks: where each came from, its state and the start of its text.
#[component]
fn RunBlocks(blocks: Vec<self::types::BlockView>, total: i64) -> impl IntoView {
    let shown = blocks.len() as i64;
    view! {
        <h2>"Blocks"</h2>
        {(shown < total).then(|| view! { <p class="summary">{format!("The first {shown} of {total} blocks.")}</p> })}
        <table class="runs-table" data-testid="run-blocks-table">
            {table_head(&["#", "From", "State", "Text", "Result produced with"])}
            <tbody>
                {blocks
                    .into_iter()
                    .map(|b| {
                        let from = match (&b.file, b.position) {
                            (Some(f), Some(p)) => format!("{f}, {p}"),
                            _ => "pasted text".to_string(),
                        };
                        view! {
                            <tr data-testid=format!("run-block-{}", b.block_index)>
                                <td>{b.block_index}</td>
                                <td>{from}</td>
                                <td>
                                    <span class=format!("status status--{}", b.state)>{b.state.as_str()}</span>
                                </td>
                                <td class="block-preview">{b.preview}</td>
                                <td>{b.produced_by.unwrap_or_default()}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// What workers reported on the run, by code: how many, and the latest.
#[component]
fn RunEvents(events: Vec<self::types::EventSummary>) -> impl IntoView {
    view! {
        <h2>"Worker reports"</h2>
        {if events.is_empty() {
            view! { <p class="summary" data-testid="run-events-empty">"No reports from workers."</p> }.into_any()
        } else {
            view! {
                <p class="summary">"Warnings never fail a run; they say where the policy was not fully applied."</p>
                <table class="runs-table" data-testid="run-events-table">
                    {table_head(&["Code", "Level", "Count", "Latest"])}
                    <tbody>
                        {events
                            .into_iter()
                            .map(|e| {
                                let code = e.code.clone();
                                view! {
                                    <tr data-testid=format!("run-event-{code}")>
                                        <td>
                                            <code>{e.code}</code>
                                        </td>
                                        <td>
                                            <span class=format!("level level--{}", e.level.as_str())>{e.level.as_str()}</span>
                                        </td>
                                        <td data-testid=format!("run-event-count-{code}")>{e.count}</td>
                                        <td>
                                            {format!(
                                                "{} ({} by {}{})",
                                                e.latest_message,
                                                e.latest_at,
                                                e.latest_worker,
                                                e.latest_block_uid.map(|b| format!(", block {b}")).unwrap_or_default(),
                                            )}
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            }
                .into_any()
        }}
    }
}

/// The workers that claimed, completed or reported on the run.
#[component]
fn RunWorkers(workers: Vec<self::types::WorkerSeen>) -> impl IntoView {
    (!workers.is_empty()).then(|| {
        view! {
            <h2>"Workers"</h2>
            <table class="runs-table" data-testid="run-workers-table">
                {table_head(&["Worker", "Token", "First seen (UTC)", "Last seen (UTC)"])}
                <tbody>
                    {workers
                        .into_iter()
                        .map(|w| {
                            view! {
                                <tr>
                                    <td>{w.worker}</td>
                                    <td>{w.token}</td>
                                    <td>{w.first_seen_at}</td>
                                    <td>{w.last_seen_at}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        }
    })
}
