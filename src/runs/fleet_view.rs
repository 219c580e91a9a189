//! `/app/runs/fleet`: the fleet page for superusers. Every worker seen in the last hour, its
//! token, the runs it holds claims in with each snapshot's policy revision, and the keys where a
//! run's snapshot differs from today's baseline.

use leptos::prelude::*;
use leptos_router::components::A;

use super::api::fleet_status;
use super::types::Fleet;
use crate::paths::{run_href, RUNS};
use crate::ui::ErrorText;

#[component]
pub fn FleetPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| fleet_status());
    view! {
        <section class="runs" data-testid="fleet-page">
            <p>
                <A href=RUNS>"All runs"</A>
            </p>
            <h1>"Fleet"</h1>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(fleet) => view! { <FleetTable fleet /> }.into_any(),
                        Err(error) => view! { <ErrorText error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn FleetTable(fleet: Fleet) -> impl IntoView {
    let intro = format!(
        "Workers seen since {} UTC. Today's policy is at revision {}; a run whose snapshot differs from it names the keys.",
        fleet.since, fleet.baseline_revision
    );
    if fleet.workers.is_empty() {
        return view! {
            <p class="summary">{intro}</p>
            <p class="summary" data-testid="fleet-empty">"No worker has been seen in the last hour."</p>
        }
        .into_any();
    }
    view! {
        <p class="summary">{intro}</p>
        <table class="runs-table" data-testid="fleet-table">
            {super::table_head(&["Worker", "Token", "Last seen (UTC)", "Runs it holds claims in"])}
            <tbody>
                {fleet
                    .workers
                    .into_iter()
                    .map(|w| {
                        let runs = if w.runs.is_empty() {
                            view! { <span class="same">"none"</span> }.into_any()
                        } else {
                            view! {
                                <ul class="fleet-runs">
                                    {w
                                        .runs
                                        .into_iter()
                                        .map(|r| {
                                            let drift = (!r.differing_keys.is_empty())
                                                .then(|| {
                                                    view! {
                                                        <span class="drift-marker" data-testid=format!("fleet-drift-{}", r.run_id)>
                                                            <strong>"Older than the baseline: "</strong>
                                                            {r.differing_keys.join(", ")}
                                                        </span>
                                                    }
                                                });
                                            view! {
                                                <li data-testid=format!("fleet-run-{}", r.run_id)>
                                                    <A href=run_href(r.run_id)>{format!("#{}", r.run_id)}</A>
                                                    {format!(
                                                        " ({}, policy revision {}, {} block(s) held) ",
                                                        r.status,
                                                        r.policy_revision,
                                                        r.held_blocks,
                                                    )}
                                                    {drift}
                                                </li>
                                            }
                                        })
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        };
                        let testid = format!("fleet-worker-{}", w.worker);
                        view! {
                            <tr data-testid=testid>
                                <td>{w.worker}</td>
                                <td>{w.token}</td>
                                <td>{w.last_seen_at}</td>
                                <td>{runs}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
