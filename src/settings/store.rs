//! What the settings page keeps in the browser tab while pages are swapped in place: a draft
//! per key and the staged edits, in `sessionStorage`, so neither is lost when a category or a
//! save brings a new page. The navigation script (`islands_nav.js`) clears what a
//! form names in its `data-done` once the server has accepted that form. On the server every
//! read finds nothing, so an island renders as the server did before it reads the tab's store.

use super::types::StagedChange;

/// Where the draft of `key` is kept (a JSON [`Draft`]).
pub fn draft_item(key: &str) -> String {
    format!("rp.draft.{key}")
}

/// A value typed and not yet saved, with the key's version it was typed against: saving it
/// expects that version, so a change someone made since is shown (a conflict), never
/// overwritten unseen.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Draft {
    pub text: String,
    pub base: i64,
}

/// The draft of `key`, if any.
pub fn draft(key: &str) -> Option<Draft> {
    get(&draft_item(key)).and_then(|s| serde_json::from_str(&s).ok())
}

/// Keeps the draft of `key`, or forgets it.
pub fn set_draft(key: &str, draft: Option<&Draft>) {
    let text = draft.and_then(|d| serde_json::to_string(d).ok());
    set(&draft_item(key), text.as_deref());
}

/// Where the staged edits are kept (a JSON list of [`StagedChange`]).
pub const STAGED: &str = "rp.staged";

/// Where a new API token waits, for the page after its creation to show it once.
pub const NEW_TOKEN: &str = "rp.new_token";

/// The window event sent when the staged edits change, for every island showing them.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub const STAGED_EVENT: &str = "rp-staged";

#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

/// The text kept under `item`.
pub fn get(item: &str) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        storage()?.get_item(item).ok()?
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = item;
        None
    }
}

/// Keeps `value` under `item`, or removes it. A full store (or none) keeps nothing: the page
/// still works, it only forgets sooner.
pub fn set(item: &str, value: Option<&str>) {
    #[cfg(feature = "hydrate")]
    if let Some(s) = storage() {
        let _ = match value {
            Some(v) => s.set_item(item, v),
            None => s.remove_item(item),
        };
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (item, value);
}

/// Takes (reads and removes) the text under `item`.
pub fn take(item: &str) -> Option<String> {
    let v = get(item);
    if v.is_some() {
        set(item, None);
    }
    v
}

/// The staged edits, oldest first.
pub fn staged() -> Vec<StagedChange> {
    get(STAGED).and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default()
}

/// Replaces the staged edits and tells every island showing them.
pub fn set_staged(list: &[StagedChange]) {
    let text = (!list.is_empty()).then(|| serde_json::to_string(list).unwrap_or_default());
    set(STAGED, text.as_deref());
    #[cfg(feature = "hydrate")]
    if let (Some(w), Ok(ev)) = (web_sys::window(), web_sys::Event::new(STAGED_EVENT)) {
        let _ = w.dispatch_event(&ev);
    }
}

/// Stages `change`, replacing an earlier staged edit of the same key.
pub fn stage(change: StagedChange) {
    let mut list = staged();
    match list.iter_mut().find(|c| c.key == change.key) {
        Some(c) => *c = change,
        None => list.push(change),
    }
    set_staged(&list);
}
