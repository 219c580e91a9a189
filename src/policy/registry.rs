//! The policy registry: every key, declared once. Validation (`parse.rs`), resolution, the
//! page, the CLI and the API all read from here; adding a key is one entry below plus its test.

use serde::{Deserialize, Serialize};

use super::value::{PolicyValue, Provider, ValidationError};

/// The names of the keys that logic reads (resolution, the store's cross-key rule, the
/// snapshot's accessors). Everything else about a key is in [`REGISTRY`].
pub mod keys {
    pub const PROVIDER_REGISTRY: &str = "models.provider_registry";
    pub const DEFAULT_MODEL: &str = "models.platform_default_model";
    pub const DEFAULT_TEMPERATURE: &str = "models.platform_default_temperature";
    pub const DEFAULT_MAX_TOKENS: &str = "models.platform_default_max_tokens";
    pub const CLAIM_BATCH_SIZE: &str = "worker.claim_batch_size";
    pub const CLAIM_ORDERING: &str = "worker.claim_ordering";
    pub const SYSTEM_PROMPT: &str = "worker.default_system_prompt";
    pub const BLOCK_PROMPT: &str = "worker.default_block_prompt";
    pub const MAX_RETRIES: &str = "worker.max_retries";
    pub const PROMPT_CACHING: &str = "worker.prompt_caching.enabled";
    pub const PROMPT_CACHING_MODE: &str = "worker.prompt_caching.mode";
    pub const BATCHING: &str = "worker.batching.enabled";
    pub const BATCHING_SAFETY_MARGIN: &str = "worker.batching.safety_margin";
    pub const UPLOAD_MAX_FILES: &str = "upload.max_files_per_batch";
    pub const UPLOAD_EXTENSIONS: &str = "upload.allowed_extensions";
}

/// The groups keys are shown in, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Models,
    Worker,
    Optimization,
    Upload,
}

impl Category {
    pub const ALL: [Category; 4] = [Category::Models, Category::Worker, Category::Optimization, Category::Upload];

    /// The path segment used in deep links.
    pub fn slug(self) -> &'static str {
        match self {
            Category::Models => "models",
            Category::Worker => "worker",
            Category::Optimization => "optimization",
            Category::Upload => "upload",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Category::Models => "Models",
            Category::Worker => "Worker execution",
            Category::Optimization => "Optimization",
            Category::Upload => "Upload",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Category::Models => {
                "Which providers and models workers may use, and the platform defaults for model, temperature and output length."
            }
            Category::Worker => "How workers claim and process blocks: batch size, ordering, prompts and retries.",
            Category::Optimization => "Prompt caching and multi-block batching switches.",
            Category::Upload => "Limits on what users may upload: files per batch and allowed extensions.",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.slug() == slug)
    }
}

/// The layers a value can come from, lowest to highest: the order of the variants is the
/// precedence (`resolve.rs` applies it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Default,
    Env,
    Admin,
    RunSnapshot,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Default => "default",
            Layer::Env => "env",
            Layer::Admin => "admin",
            Layer::RunSnapshot => "run_snapshot",
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The widget the page draws for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Toggle,
    Slider,
    Dropdown,
    Numeric,
    Textarea,
    TagList,
    TableEditor,
}

/// The type of a key's value and its bounds (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    /// A decimal in hundredths, on a grid of `step` hundredths.
    Decimal {
        min: i64,
        max: i64,
        step: i64,
    },
    Enum {
        options: &'static [&'static str],
    },
    Text {
        min_chars: usize,
        max_chars: usize,
        must_contain: Option<&'static str>,
    },
    /// Lower-case file extensions: `[a-z0-9]{1,10}`, unique.
    Extensions {
        min_items: usize,
        max_items: usize,
    },
    Providers,
    /// `provider/model`, present in an enabled provider of the effective registry.
    ModelRef,
}

/// A key that is only meaningful while another boolean key is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub key: &'static str,
    pub note: &'static str,
}

/// One policy key, following the six-part control pattern: control type, scope and non-scope,
/// precedence (the order of [`Layer`]), snapshot behaviour (shown on the settings page),
/// validation bounds ([`Kind`]) and audit (every change, `policy/audit.rs`).
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    pub key: &'static str,
    pub category: Category,
    pub label: &'static str,
    pub scope: &'static str,
    pub non_scope: &'static str,
    pub control: Control,
    pub kind: Kind,
    pub default: fn() -> PolicyValue,
    pub snapshot: &'static str,
    pub depends_on: Option<Dependency>,
}

const NEW_RUNS_ONLY: &str = "Captured into each run when it is created; a change applies to new runs only.";

/// Limits shared by the provider registry's validation.
pub const MAX_PROVIDERS: usize = 32;
pub const MAX_MODELS_PER_PROVIDER: usize = 64;

pub const BLOCK_TEXT_PLACEHOLDER: &str = "{{block_text}}";

fn default_providers() -> PolicyValue {
    let p = |id: &str, label: &str, models: &[&str]| Provider {
        id: id.into(),
        label: label.into(),
        enabled: true,
        models: models.iter().map(|m| m.to_string()).collect(),
    };
    PolicyValue::Providers(vec![
        p("anthropic", "Anthropic", &["claude-sonnet-4-5", "claude-haiku-4-5"]),
        p("openai", "OpenAI", &["gpt-4.1", "gpt-4.1-mini"]),
        p("google", "Google", &["gemini-2.5-pro", "gemini-2.5-flash"]),
    ])
}

pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a careful extraction assistant. Read the text you are given and return only the information requested, in the requested format. Do not add facts that are not in the text.";
pub const DEFAULT_BLOCK_PROMPT: &str =
    "Extract the requested information from the following block of text.\n\n{{block_text}}";

/// Every key, in display order. `models.provider_registry` comes first: the default model is
/// checked against the registry resolved before it.
pub static REGISTRY: &[KeySpec] = &[
    KeySpec {
        key: keys::PROVIDER_REGISTRY,
        category: Category::Models,
        label: "Provider registry",
        scope: "The providers and models offered in Settings and usable by workers; disabling a provider hides its models from new runs.",
        non_scope: "Does not hold credentials, endpoints or prices, and does not change runs already created.",
        control: Control::TableEditor,
        kind: Kind::Providers,
        default: default_providers,
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::DEFAULT_MODEL,
        category: Category::Models,
        label: "Default model",
        scope: "The model a worker uses when a run does not name one.",
        non_scope: "Does not override a model chosen explicitly for a run.",
        control: Control::Dropdown,
        kind: Kind::ModelRef,
        default: || PolicyValue::Enum("anthropic/claude-sonnet-4-5".into()),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::DEFAULT_TEMPERATURE,
        category: Category::Models,
        label: "Default temperature",
        scope: "Sampling temperature for worker model calls that do not set one.",
        non_scope: "Does not apply to calls that set their own temperature.",
        control: Control::Slider,
        kind: Kind::Decimal { min: 0, max: 200, step: 5 },
        default: || PolicyValue::Hundredths(30),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::DEFAULT_MAX_TOKENS,
        category: Category::Models,
        label: "Default max output tokens",
        scope: "Upper limit on the tokens a worker asks a model to generate per call.",
        non_scope: "Does not limit input size or a provider's own maximum.",
        control: Control::Numeric,
        kind: Kind::Int { min: 256, max: 128_000 },
        default: || PolicyValue::Int(4096),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::CLAIM_BATCH_SIZE,
        category: Category::Worker,
        label: "Claim batch size",
        scope: "How many blocks a worker claims from a run at once.",
        non_scope: "Does not change how many workers run, nor multi-block batching of model calls.",
        control: Control::Slider,
        kind: Kind::Int { min: 1, max: 100 },
        default: || PolicyValue::Int(10),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::CLAIM_ORDERING,
        category: Category::Worker,
        label: "Claim ordering",
        scope: "The order in which a run's blocks are claimed, by their integer block_index.",
        non_scope: "Never orders block indexes as text; does not reorder results.",
        control: Control::Dropdown,
        kind: Kind::Enum { options: &["block_index_asc", "block_index_desc"] },
        default: || PolicyValue::Enum("block_index_asc".into()),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::SYSTEM_PROMPT,
        category: Category::Worker,
        label: "Default system prompt",
        scope: "The system prompt workers send when a run does not bring its own.",
        non_scope: "Does not replace a prompt defined by a run or a schema.",
        control: Control::Textarea,
        kind: Kind::Text { min_chars: 1, max_chars: 20_000, must_contain: None },
        default: || PolicyValue::Text(DEFAULT_SYSTEM_PROMPT.into()),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::BLOCK_PROMPT,
        category: Category::Worker,
        label: "Default block prompt",
        scope: "The per-block prompt template; {{block_text}} is replaced by the block's text.",
        non_scope: "Does not change the system prompt or how blocks are cut.",
        control: Control::Textarea,
        kind: Kind::Text {
            min_chars: 1,
            max_chars: 20_000,
            must_contain: Some(BLOCK_TEXT_PLACEHOLDER),
        },
        default: || PolicyValue::Text(DEFAULT_BLOCK_PROMPT.into()),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::MAX_RETRIES,
        category: Category::Worker,
        label: "Max retries per block",
        scope: "How many times a failed block is retried before it is marked failed.",
        non_scope: "Does not retry whole runs or change the claim lease time.",
        control: Control::Numeric,
        kind: Kind::Int { min: 0, max: 10 },
        default: || PolicyValue::Int(3),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::PROMPT_CACHING,
        category: Category::Optimization,
        label: "Prompt caching",
        scope: "Sends provider caching directives with worker model calls.",
        non_scope: "A provider that ignores caching is not an error; runs never fail because of it.",
        control: Control::Toggle,
        kind: Kind::Bool,
        default: || PolicyValue::Bool(false),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::PROMPT_CACHING_MODE,
        category: Category::Optimization,
        label: "Prompt caching mode",
        scope: "How caching directives are placed; auto lets the worker choose.",
        non_scope: "Has no effect while prompt caching is off.",
        control: Control::Dropdown,
        kind: Kind::Enum { options: &["auto"] },
        default: || PolicyValue::Enum("auto".into()),
        snapshot: NEW_RUNS_ONLY,
        depends_on: Some(Dependency {
            key: keys::PROMPT_CACHING,
            note: "Only used while prompt caching is on.",
        }),
    },
    KeySpec {
        key: keys::BATCHING,
        category: Category::Optimization,
        label: "Multi-block batching",
        scope: "Packs several blocks into one model call, keeping each result mapped to its (run_id, block_uid).",
        non_scope: "Does not change the claim batch size.",
        control: Control::Toggle,
        kind: Kind::Bool,
        default: || PolicyValue::Bool(false),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::BATCHING_SAFETY_MARGIN,
        category: Category::Optimization,
        label: "Batching safety margin",
        scope: "Share of the model context held back when packing blocks into one call.",
        non_scope: "Has no effect while batching is off.",
        control: Control::Slider,
        kind: Kind::Decimal { min: 5, max: 50, step: 1 },
        default: || PolicyValue::Hundredths(20),
        snapshot: NEW_RUNS_ONLY,
        depends_on: Some(Dependency {
            key: keys::BATCHING,
            note: "Only used while multi-block batching is on.",
        }),
    },
    KeySpec {
        key: keys::UPLOAD_MAX_FILES,
        category: Category::Upload,
        label: "Max files per upload batch",
        scope: "How many files a user may upload in one batch.",
        non_scope: "Does not limit file size or the total number of files.",
        control: Control::Numeric,
        kind: Kind::Int { min: 1, max: 500 },
        default: || PolicyValue::Int(20),
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
    KeySpec {
        key: keys::UPLOAD_EXTENSIONS,
        category: Category::Upload,
        label: "Allowed file extensions",
        scope: "File extensions accepted for upload, lower-case and without the dot.",
        non_scope: "Does not relax the content check: a file must also be what its extension says.",
        control: Control::TagList,
        kind: Kind::Extensions { min_items: 1, max_items: 50 },
        default: || {
            PolicyValue::List(["pdf", "docx", "txt", "md", "html", "csv"].map(String::from).to_vec())
        },
        snapshot: NEW_RUNS_ONLY,
        depends_on: None,
    },
];

pub fn spec(key: &str) -> Option<&'static KeySpec> {
    REGISTRY.iter().find(|s| s.key == key)
}

pub fn keys_in(category: Category) -> impl Iterator<Item = &'static KeySpec> {
    REGISTRY.iter().filter(move |s| s.category == category)
}

/// An error for a key that the registry does not hold.
pub fn unknown_key(key: &str) -> ValidationError {
    ValidationError::new(key, "is not a policy key; `runtime-policy policy list` shows them all")
}

/// The keys whose changes need a second superuser: a change set touching any of them becomes a
/// change request (`review.rs`) that another superuser approves or rejects.
pub const REVIEWED_KEYS: &[&str] = &[keys::PROVIDER_REGISTRY, keys::DEFAULT_MODEL, keys::MAX_RETRIES];

impl KeySpec {
    /// Whether a change of this key needs a second superuser's approval.
    pub fn needs_review(&self) -> bool {
        REVIEWED_KEYS.contains(&self.key)
    }

    /// The deep link to this key on the settings page.
    pub fn href(&self) -> String {
        crate::paths::key_link(self.category.slug(), self.key)
    }

    /// `POLICY__` + the key upper-cased with `.` replaced by `__`.
    pub fn env_var(&self) -> String {
        format!("POLICY__{}", self.key.to_ascii_uppercase().replace('.', "__"))
    }

    pub fn default_value(&self) -> PolicyValue {
        (self.default)()
    }
}
