//! Documents uploaded to create a run: the upload policy that admits them, the check that each
//! file's content is what its extension says, and the extraction of its text into blocks.
//!
//! Extraction is deterministic: the same bytes always give the same blocks in the same order.
//! - `txt`, `md`: one block per paragraph (paragraphs are separated by blank lines);
//! - `csv`: one block per data row, each holding the header line and then the row;
//! - `html` (`htm`): the text without markup (no scripts, styles or comments), one block per
//!   paragraph-level element;
//! - `pdf`: one block per page with text (pdf-extract);
//! - `docx`: one block per paragraph with text, table cells included (docx-rs).
//!
//! Each block records its position in its file: the paragraph, row or page number (from 1).
//!
//! The server and the CLI extract in a child process of their own binary
//! (`runtime-policy extract-text`) under a memory and a CPU-time limit, so a document built to
//! expand without bound (a compressed stream of gigabytes) or to trap a parser costs the upload,
//! never the server. Elsewhere (the library in tests) extraction runs in the calling process.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::input::MAX_BLOCK_CHARS;
use crate::error::AppError;
use crate::policy::registry::keys;
use crate::policy::resolve::Resolved;
use crate::policy::value::canonical_json;

pub use super::types::{MAX_FILE_BYTES, MAX_UPLOAD_BYTES};
/// The most text (UTF-8 bytes) the files of one upload may yield together.
pub const MAX_UPLOAD_TEXT_BYTES: usize = 16 << 20;
/// The most a text-extraction child may write back (its JSON escapes text).
const MAX_CHILD_OUTPUT: u64 = 100 << 20;
/// Extractions at once in this process; an upload waits up to [`EXTRACTION_WAIT`] for its turn.
const EXTRACTIONS_AT_ONCE: usize = 2;
const EXTRACTION_WAIT: Duration = Duration::from_secs(30);
/// The longest file name kept.
pub const MAX_NAME_CHARS: usize = 255;
/// The extensions text can be taken from; `upload.allowed_extensions` decides which of them
/// (and of any other) a user may send.
pub const EXTRACTABLE: [&str; 7] = ["txt", "md", "csv", "html", "htm", "pdf", "docx"];

/// A file as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A file's blocks, ready to be stored with the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileBlocks {
    pub name: String,
    pub extension: String,
    pub size_bytes: i64,
    pub sha256: String,
    /// (position in the file from 1, text), in file order.
    pub blocks: Vec<(i64, String)>,
}

/// A file name as it is kept: the part after the last `/` or `\`, trimmed; 1 to
/// [`MAX_NAME_CHARS`] characters with no control characters.
pub fn clean_name(field: &str, raw: &str) -> Result<String, AppError> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() {
        return Err(AppError::invalid(field, "has no file name"));
    }
    if base.chars().any(char::is_control) {
        return Err(AppError::invalid(field, "has a file name with control characters"));
    }
    let n = base.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(AppError::invalid(field, format!("has a file name of {n} characters; at most {MAX_NAME_CHARS}")));
    }
    Ok(base.to_string())
}

/// The extension of a file name, lower-case and without the dot ("" when there is none).
pub fn extension_of(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// The effective upload keys at one moment, with the layer each came from.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadLimits {
    pub max_files: i64,
    max_files_shown: String,
    pub extensions: Vec<String>,
    extensions_shown: String,
}

impl UploadLimits {
    /// Reads the upload keys from a resolution of the policy (today's, or the one a run's
    /// snapshot is taken from).
    pub fn from_resolved(resolved: &[Resolved]) -> UploadLimits {
        let find = |key: &str| resolved.iter().find(|r| r.key == key);
        let (max_files, max_files_shown) = match find(keys::UPLOAD_MAX_FILES) {
            Some(r) => (r.value.as_i64().unwrap_or(1), format!("{} (source={})", canonical_json(&r.value), r.source)),
            None => (1, "missing".to_string()),
        };
        let (extensions, extensions_shown) = match find(keys::UPLOAD_EXTENSIONS) {
            Some(r) => (
                r.value
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_ascii_lowercase)).collect())
                    .unwrap_or_default(),
                format!("{} (source={})", canonical_json(&r.value), r.source),
            ),
            None => (Vec::new(), "missing".to_string()),
        };
        UploadLimits { max_files, max_files_shown, extensions, extensions_shown }
    }

    /// Refuses the whole upload when it holds too many files or a file whose extension is not
    /// allowed, naming the key, its effective value and its source.
    pub fn check(&self, names: &[String]) -> Result<(), AppError> {
        let refuse = |message: String| AppError::Field { field: "files".into(), message };
        if names.len() as i64 > self.max_files {
            return Err(refuse(format!(
                "{} is {}; {} files were sent",
                keys::UPLOAD_MAX_FILES,
                self.max_files_shown,
                names.len()
            )));
        }
        for name in names {
            let ext = extension_of(name);
            if !self.extensions.contains(&ext) {
                let has =
                    if ext.is_empty() { "has no extension".to_string() } else { format!("has extension \"{ext}\"") };
                return Err(refuse(format!(
                    "{} is {}; \"{name}\" {has}",
                    keys::UPLOAD_EXTENSIONS,
                    self.extensions_shown
                )));
            }
        }
        Ok(())
    }
}

/// Checks that the upload holds at least one file and is within the size limits.
pub fn check_sizes(files: &[UploadedFile]) -> Result<(), AppError> {
    if files.is_empty() {
        return Err(AppError::invalid("files", "needs at least one file"));
    }
    let mut total = 0usize;
    for f in files {
        if f.bytes.len() > MAX_FILE_BYTES {
            return Err(AppError::TooLarge(format!(
                "files: \"{}\" holds {} bytes; at most {MAX_FILE_BYTES} bytes per file",
                f.name,
                f.bytes.len()
            )));
        }
        total += f.bytes.len();
    }
    if total > MAX_UPLOAD_BYTES {
        return Err(AppError::TooLarge(format!(
            "files: the upload holds {total} bytes; at most {MAX_UPLOAD_BYTES} bytes in all"
        )));
    }
    Ok(())
}

/// Where text extraction runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// The binary to run as `<exe> extract-text`.
    pub exe: PathBuf,
    /// The child's address-space limit.
    pub memory_bytes: u64,
    /// The child's CPU-time limit and the wall-clock wait for it.
    pub seconds: u64,
}

impl Isolation {
    /// Extraction in a child of this process's own binary, with the default limits. On Linux
    /// the binary is reached through `/proc/self/exe`, so a binary replaced or removed by an
    /// upgrade still starts the same version as the server.
    pub fn current_exe() -> Result<Isolation, AppError> {
        let proc_exe = PathBuf::from("/proc/self/exe");
        let exe = if proc_exe.exists() {
            proc_exe
        } else {
            std::env::current_exe().map_err(|e| {
                AppError::Internal(format!("cannot find this program's binary for text extraction: {e}"))
            })?
        };
        Ok(Isolation { exe, memory_bytes: EXTRACT_MEMORY_BYTES, seconds: EXTRACT_SECONDS })
    }
}

/// The memory one extraction may use.
pub const EXTRACT_MEMORY_BYTES: u64 = 1 << 30;
/// The time one extraction may take.
pub const EXTRACT_SECONDS: u64 = 60;

static ISOLATION: OnceLock<Isolation> = OnceLock::new();

/// Makes every later extraction in this process run isolated (the server and the CLI call it
/// at start). The first call wins.
pub fn isolate_extraction(isolation: Isolation) {
    let _ = ISOLATION.set(isolation);
}

/// Extracts every file's blocks, in upload order: in a child process when
/// [`isolate_extraction`] was called, else on a blocking thread of this one.
pub async fn extract_files(files: Vec<UploadedFile>) -> Result<Vec<FileBlocks>, AppError> {
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(EXTRACTIONS_AT_ONCE);
    let _turn = match tokio::time::timeout(EXTRACTION_WAIT, TURNS.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            return Err(AppError::TooManyRequests {
                message: "Other uploads are being read; send this one again in a few seconds.".into(),
                retry_after_secs: 5,
            })
        }
    };
    match ISOLATION.get() {
        Some(isolation) => extract_isolated(isolation, &files).await,
        None => tokio::task::spawn_blocking(move || extract_all(&files)).await.map_err(|e| {
            tracing::error!(error = %e, "text extraction did not finish");
            AppError::internal()
        })?,
    }
}

/// The child's input: per file, its name's length (u32 LE), the name, its length (u64 LE) and
/// its bytes.
fn encode_files(files: &[UploadedFile]) -> Vec<u8> {
    let mut out = Vec::with_capacity(files.iter().map(|f| f.bytes.len() + f.name.len() + 12).sum());
    for f in files {
        out.extend_from_slice(&(f.name.len() as u32).to_le_bytes());
        out.extend_from_slice(f.name.as_bytes());
        out.extend_from_slice(&(f.bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&f.bytes);
    }
    out
}

fn decode_files(mut input: &[u8]) -> Option<Vec<UploadedFile>> {
    let mut files = Vec::new();
    let take = |n: usize, input: &mut &[u8]| -> Option<Vec<u8>> {
        let (head, rest) = (input.get(..n)?, input.get(n..)?);
        *input = rest;
        Some(head.to_vec())
    };
    while !input.is_empty() {
        let n = u32::from_le_bytes(take(4, &mut input)?.try_into().ok()?) as usize;
        let name = String::from_utf8(take(n, &mut input)?).ok()?;
        let n = u64::from_le_bytes(take(8, &mut input)?.try_into().ok()?) as usize;
        files.push(UploadedFile { name, bytes: take(n, &mut input)? });
    }
    Some(files)
}

/// What the child writes on stdout.
#[derive(Debug, Serialize, Deserialize)]
enum ChildAnswer {
    Files(Vec<FileBlocks>),
    Refused { status: u16, field: Option<String>, message: String },
}

/// `runtime-policy extract-text`: reads files on stdin ([`encode_files`]), writes their blocks or
/// the refusal as JSON on stdout, and names each file on stderr before reading it.
pub fn extract_main() -> std::process::ExitCode {
    use std::io::{Read, Write};
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    let Some(files) = decode_files(&input) else {
        return std::process::ExitCode::FAILURE;
    };
    drop(input);
    let mut blocks = Vec::with_capacity(files.len());
    let mut answer = None;
    for f in &files {
        let _ = writeln!(std::io::stderr(), "reading {}", f.name);
        match extract(f) {
            Ok(b) => blocks.push(b),
            Err(e) => {
                answer = Some(ChildAnswer::Refused {
                    status: e.status_code(),
                    field: e.field_name().map(str::to_string),
                    message: e.to_string(),
                });
                break;
            }
        }
    }
    let answer = answer.unwrap_or_else(|| match check_totals(&blocks) {
        Ok(()) => ChildAnswer::Files(blocks),
        Err(e) => ChildAnswer::Refused {
            status: e.status_code(),
            field: e.field_name().map(str::to_string),
            message: e.to_string(),
        },
    });
    match serde_json::to_writer(std::io::stdout().lock(), &answer) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}

/// Extracts in a child process under `isolation`'s limits.
pub async fn extract_isolated(isolation: &Isolation, files: &[UploadedFile]) -> Result<Vec<FileBlocks>, AppError> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(&isolation.exe);
    cmd.arg("extract-text")
        .env_clear()
        .env("RUST_LOG", "off")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let (memory, seconds) = (isolation.memory_bytes, isolation.seconds);
    // SAFETY: between fork and exec the closure only calls setrlimit and prctl, which are
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let limit = |resource, value: u64| {
                let l = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
                if libc::setrlimit(resource, &l) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            limit(libc::RLIMIT_AS, memory)?;
            limit(libc::RLIMIT_CPU, seconds)?;
            limit(libc::RLIMIT_CORE, 0)?;
            // A server killed with SIGKILL takes its extraction with it.
            #[cfg(target_os = "linux")]
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let internal = |what: &str, e: std::io::Error| {
        tracing::error!(error = %e, "text extraction: {what}");
        AppError::internal()
    };
    let mut child = cmd.spawn().map_err(|e| internal("cannot start the extraction process", e))?;
    let input = encode_files(files);
    let mut stdin = child.stdin.take().ok_or_else(AppError::internal)?;
    let writer = tokio::spawn(async move {
        // A child that dies early closes its end; its exit status says why.
        let _ = stdin.write_all(&input).await;
    });
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(AppError::internal());
    };
    // Both outputs are read at once, each up to a bound, so the child can neither block on a
    // full pipe nor make this process hold more than the bound.
    let read = async {
        use tokio::io::AsyncReadExt;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (mut stdout, mut stderr) = (stdout.take(MAX_CHILD_OUTPUT + 1), stderr.take(64 << 10));
        let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        a.and(b)?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, out, err))
    };
    let waited = tokio::time::timeout(Duration::from_secs(seconds), read).await;
    writer.abort();
    let limits = format!(
        "the documents could not be read within the limits of text extraction ({} MiB of memory, {seconds} s)",
        memory >> 20
    );
    let (status, stdout, stderr) = match waited {
        Err(_) => return Err(AppError::Field { field: "files".into(), message: format!("files: {limits}") }),
        Ok(result) => result.map_err(|e| internal("the extraction process failed", e))?,
    };
    if stdout.len() as u64 > MAX_CHILD_OUTPUT {
        return Err(AppError::invalid("files", "yield more text than one upload may hold"));
    }
    let output = std::process::Output { status, stdout, stderr };
    if output.status.success() {
        match serde_json::from_slice::<ChildAnswer>(&output.stdout) {
            Ok(ChildAnswer::Files(blocks)) => return Ok(blocks),
            Ok(ChildAnswer::Refused { status: 413, message, .. }) => return Err(AppError::TooLarge(message)),
            Ok(ChildAnswer::Refused { field, message, .. }) => {
                return Err(AppError::Field { field: field.unwrap_or_else(|| "files".into()), message })
            }
            Err(e) => tracing::error!(error = %e, "text extraction answered what does not parse"),
        }
    }
    // Killed by a limit (or crashed): name the file it was reading.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let culprit = stderr.lines().rev().find_map(|l| l.strip_prefix("reading ")).map(str::to_string);
    tracing::warn!(status = %output.status, file = culprit.as_deref().unwrap_or("?"), "text extraction stopped");
    Err(AppError::Field {
        field: "files".into(),
        message: match culprit {
            Some(name) => format!("files: \"{name}\": {limits}; it may be malformed or built to expand without bound"),
            None => format!("files: {limits}"),
        },
    })
}

/// Extracts every file's blocks, in upload order. A file that is not what its extension
/// says, that cannot be read, or that yields no text refuses the whole upload, by name.
pub fn extract_all(files: &[UploadedFile]) -> Result<Vec<FileBlocks>, AppError> {
    let out = files.iter().map(extract).collect::<Result<Vec<_>, _>>()?;
    check_totals(&out)?;
    Ok(out)
}

/// At most [`super::input::MAX_BLOCKS`] blocks and [`MAX_UPLOAD_TEXT_BYTES`] of text in all.
fn check_totals(files: &[FileBlocks]) -> Result<(), AppError> {
    let blocks: usize = files.iter().map(|f| f.blocks.len()).sum();
    if blocks > super::input::MAX_BLOCKS {
        return Err(AppError::invalid(
            "files",
            format!("yield {blocks} blocks; a run holds at most {}", super::input::MAX_BLOCKS),
        ));
    }
    let bytes: usize = files.iter().flat_map(|f| f.blocks.iter()).map(|(_, t)| t.len()).sum();
    if bytes > MAX_UPLOAD_TEXT_BYTES {
        return Err(AppError::invalid(
            "files",
            format!("yield {bytes} bytes of text; one upload may yield at most {MAX_UPLOAD_TEXT_BYTES}"),
        ));
    }
    Ok(())
}

/// Extracts one file's blocks. A parser that panics on a malformed document refuses the file.
pub fn extract(file: &UploadedFile) -> Result<FileBlocks, AppError> {
    std::panic::catch_unwind(|| extract_one(file)).unwrap_or_else(|_| {
        Err(AppError::Field {
            field: "files".into(),
            message: format!("files: \"{}\" cannot be read: the document is malformed", file.name),
        })
    })
}

fn extract_one(file: &UploadedFile) -> Result<FileBlocks, AppError> {
    let name = &file.name;
    let fail = |why: String| AppError::Field { field: "files".into(), message: format!("files: \"{name}\" {why}") };
    let ext = extension_of(name);
    let bytes = &file.bytes;
    let texts: Vec<(i64, String)> = match ext.as_str() {
        "pdf" => {
            if !looks_like_pdf(bytes) {
                return Err(fail("is not a PDF (it does not start with %PDF-)".into()));
            }
            pdf_pages(bytes).map_err(|e| fail(format!("cannot be read as a PDF: {e}")))?
        }
        "docx" => {
            if !bytes.starts_with(b"PK\x03\x04") {
                return Err(fail("is not a DOCX document (it is not a ZIP package)".into()));
            }
            docx_paragraphs(bytes).map_err(|e| fail(format!("cannot be read as a DOCX document: {e}")))?
        }
        "txt" | "md" | "csv" | "html" | "htm" => {
            let text = utf8_text(bytes).map_err(fail)?;
            match ext.as_str() {
                "csv" => csv_rows(&text).map_err(fail)?,
                "html" | "htm" => {
                    if !looks_like_html(&text) {
                        return Err(fail("is not HTML (it holds no markup)".into()));
                    }
                    numbered(super::snapshot::paragraphs(&html_text(&text)))
                }
                _ => numbered(super::snapshot::paragraphs(&text)),
            }
        }
        "" => return Err(fail("has no extension, so its format is unknown".into())),
        other => {
            return Err(fail(format!(
                "is a .{other} file; text can be taken from {} files only",
                EXTRACTABLE.iter().filter(|e| **e != "htm").copied().collect::<Vec<_>>().join(", ")
            )))
        }
    };
    if texts.is_empty() {
        return Err(fail("yields no text (nothing to process)".into()));
    }
    for (position, text) in &texts {
        let n = text.chars().count();
        if n > MAX_BLOCK_CHARS {
            return Err(fail(format!(
                "has a block of {n} characters at position {position}; at most {MAX_BLOCK_CHARS} per block"
            )));
        }
    }
    Ok(FileBlocks {
        name: name.clone(),
        extension: ext,
        size_bytes: bytes.len() as i64,
        sha256: hex::encode(Sha256::digest(bytes)),
        blocks: texts,
    })
}

fn numbered(texts: Vec<String>) -> Vec<(i64, String)> {
    texts.into_iter().enumerate().map(|(i, t)| (i as i64 + 1, t)).collect()
}

/// A PDF's header may follow up to 1,024 bytes of anything (the specification's allowance).
fn looks_like_pdf(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(1024)].windows(5).any(|w| w == b"%PDF-")
}

/// Text files: UTF-8 (a byte-order mark is dropped), no NUL, and not a PDF or ZIP in disguise.
fn utf8_text(bytes: &[u8]) -> Result<String, String> {
    if bytes.starts_with(b"%PDF-") || bytes.starts_with(b"PK\x03\x04") {
        return Err("is a binary document, not text".into());
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| format!("is not UTF-8 text (at byte {})", e.valid_up_to()))?;
    if text.contains('\0') {
        return Err("is not text (it holds NUL bytes)".into());
    }
    Ok(text.replace("\r\n", "\n"))
}

/// One block per data row: the header line, then the row (both as CSV).
fn csv_rows(text: &str) -> Result<Vec<(i64, String)>, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| format!("is not CSV: {e}"))?.clone();
    let line = |record: &csv::StringRecord| -> Result<String, String> {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
        w.write_record(record).map_err(|e| e.to_string())?;
        let bytes = w.into_inner().map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&bytes).trim_end_matches('\n').to_string())
    };
    let head = line(&header)?;
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("is not CSV: {e}"))?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        out.push((i as i64 + 1, format!("{head}\n{}", line(&record)?)));
    }
    Ok(out)
}

fn looks_like_html(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(2).any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'!'))
}

/// Elements whose start or end begins a new paragraph.
const BLOCK_ELEMENTS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
    "pre",
    "hr",
    "dd",
    "dt",
    "dl",
    "main",
    "nav",
    "aside",
    "title",
    "body",
    "figcaption",
    "address",
];
/// Elements whose content is not text.
const SKIPPED_ELEMENTS: &[&str] = &["script", "style", "noscript", "template", "svg", "head"];

/// The text of an HTML document: markup, comments, scripts and styles removed, character
/// references decoded, runs of spaces collapsed, and a blank line where a paragraph-level
/// element begins or ends. The title is kept, as the first paragraph.
pub fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    let mut skipping: Option<String> = None;
    let mut title = String::new();
    let mut in_title = false;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map(|i| &after[i + 3..]).unwrap_or("");
            continue;
        }
        if rest.starts_with('<') {
            let end = rest.find('>').map(|i| i + 1).unwrap_or(rest.len());
            let tag = rest[1..end].trim_end_matches('>');
            rest = &rest[end..];
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            if name == "title" {
                in_title = !closing;
                continue;
            }
            if let Some(skipped) = &skipping {
                if closing && &name == skipped {
                    skipping = None;
                }
                continue;
            }
            if !closing && SKIPPED_ELEMENTS.contains(&name.as_str()) && !tag.ends_with('/') {
                skipping = Some(name);
                continue;
            }
            if BLOCK_ELEMENTS.contains(&name.as_str()) {
                out.push_str("\n\n");
            } else if matches!(name.as_str(), "td" | "th") && !closing {
                out.push(' ');
            }
            continue;
        }
        let next = rest.find('<').unwrap_or(rest.len());
        let chunk = decode_entities(&rest[..next]);
        rest = &rest[next..];
        if in_title {
            title.push_str(&chunk);
        } else if skipping.is_none() {
            out.push_str(&chunk);
        }
    }
    let mut text = String::new();
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if !title.is_empty() {
        text.push_str(&title);
        text.push_str("\n\n");
    }
    // Collapse spaces inside each paragraph; paragraphs are kept apart by blank lines.
    for para in out.split("\n\n") {
        let words = para.split_whitespace().collect::<Vec<_>>().join(" ");
        if !words.is_empty() {
            text.push_str(&words);
            text.push_str("\n\n");
        }
    }
    text
}

/// Decodes `&amp;`-style character references: the common named ones and every numeric one.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..].find(|c: char| c == ';' || c.is_whitespace() || c == '&').map(|j| j + 1);
        let decoded = end.filter(|e| rest.as_bytes().get(*e) == Some(&b';')).and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                "mdash" => Some('—'),
                "ndash" => Some('–'),
                "hellip" => Some('…'),
                "copy" => Some('©'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse::<u32>().ok()))
                    .and_then(char::from_u32)
                    .filter(|c| *c != '\0'),
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Runs a parser that may panic on a malformed document; a panic is the document's fault and
/// becomes an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, String> + std::panic::UnwindSafe) -> Result<T, String> {
    std::panic::catch_unwind(f).unwrap_or_else(|_| Err("the document is malformed".into()))
}

/// One block per page with text, numbered by page. A page that cannot be read refuses the
/// file rather than leaving it out.
fn pdf_pages(bytes: &[u8]) -> Result<Vec<(i64, String)>, String> {
    let pages = guarded(|| pdf_extract::extract_text_from_mem_by_pages(bytes).map_err(|e| e.to_string()))?;
    let count = guarded(|| lopdf::Document::load_mem(bytes).map(|d| d.get_pages().len()).map_err(|e| e.to_string()))?;
    if pages.len() < count {
        return Err(format!("page {} of {count} cannot be read", pages.len() + 1));
    }
    Ok(pages
        .into_iter()
        .enumerate()
        .filter_map(|(i, page)| {
            let text = super::snapshot::paragraphs(&page).join("\n\n");
            (!text.is_empty()).then(|| (i as i64 + 1, text))
        })
        .collect())
}

/// One block per paragraph with text, table cells included, numbered in document order.
fn docx_paragraphs(bytes: &[u8]) -> Result<Vec<(i64, String)>, String> {
    use docx_rs::{DocumentChild, TableCellContent, TableChild, TableRowChild};
    let docx = guarded(|| docx_rs::read_docx(bytes).map_err(|e| e.to_string()))?;
    let mut texts = Vec::new();
    fn table(t: &docx_rs::Table, texts: &mut Vec<String>) {
        for TableChild::TableRow(row) in &t.rows {
            for TableRowChild::TableCell(cell) in &row.cells {
                for c in &cell.children {
                    match c {
                        TableCellContent::Paragraph(p) => texts.push(p.raw_text()),
                        TableCellContent::Table(t) => table(t, texts),
                        _ => {}
                    }
                }
            }
        }
    }
    for child in &docx.document.children {
        match child {
            DocumentChild::Paragraph(p) => texts.push(p.raw_text()),
            DocumentChild::Table(t) => table(t, &mut texts),
            _ => {}
        }
    }
    Ok(numbered(texts.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &[u8]) -> UploadedFile {
        UploadedFile { name: name.into(), bytes: bytes.to_vec() }
    }

    #[test]
    fn the_child_framing_round_trips() {
        let files = vec![file("a.txt", b"one"), file("b\u{e9}.pdf", &[0, 1, 2]), file("e.md", b"")];
        assert_eq!(decode_files(&encode_files(&files)).unwrap(), files);
        assert!(decode_files(&encode_files(&files)[..10]).is_none());
    }

    #[test]
    fn names_and_extensions() {
        assert_eq!(clean_name("f", "C:\\docs\\Report.PDF").unwrap(), "Report.PDF");
        assert_eq!(extension_of("Report.PDF"), "pdf");
        assert_eq!(extension_of(".bashrc"), "");
        assert_eq!(extension_of("README"), "");
        assert!(clean_name("f", "dir/").is_err());
        assert!(clean_name("f", "a\u{7}.txt").is_err());
        assert!(clean_name("f", &"a".repeat(300)).is_err());
    }

    #[test]
    fn text_and_markdown_split_by_paragraph() {
        let f = extract(&file("a.md", b"# Title\n\nFirst para\nline two\n\n\nSecond")).unwrap();
        assert_eq!(f.blocks, vec![(1, "# Title".into()), (2, "First para\nline two".into()), (3, "Second".into())]);
        assert_eq!(f.extension, "md");
        assert_eq!(f.sha256.len(), 64);
        assert_eq!(extract(&file("a.md", b"# Title\n\nFirst para\nline two\n\n\nSecond")).unwrap(), f);
    }

    #[test]
    fn csv_keeps_the_header_with_each_row() {
        let f = extract(&file("t.csv", b"name,note\nada,\"likes, commas\"\n,\nbob,hi\n")).unwrap();
        assert_eq!(f.blocks, vec![(1, "name,note\nada,\"likes, commas\"".into()), (3, "name,note\nbob,hi".into())]);
        let ragged = extract(&file("t.csv", b"a,b\n1,2,3\n")).unwrap_err().to_string();
        assert!(ragged.contains("\"t.csv\" is not CSV"), "{ragged}");
        assert!(extract(&file("t.csv", b"a,b\n")).unwrap_err().to_string().contains("yields no text"));
    }

    #[test]
    fn html_loses_its_markup() {
        let html = "<!doctype html><html><head><title>The  title</title><style>p{}</style>\
            <script>var x = '<p>no</p>';</script></head><body><h1>Head &amp; shoulders</h1>\
            <p>One <b>bold</b>\n word&nbsp;&#233;&#x41;</p><!-- <p>gone</p> --><ul><li>a</li><li>b</li></ul></body></html>";
        let f = extract(&file("p.html", html.as_bytes())).unwrap();
        let texts: Vec<&str> = f.blocks.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, vec!["The title", "Head & shoulders", "One bold word éA", "a", "b"]);
        assert!(extract(&file("p.html", b"just words")).unwrap_err().to_string().contains("is not HTML"));
        // A tag cut off inside a multibyte character is text, not a panic.
        assert!(extract(&file("p.html", "<p>ok</p><\u{e9}".as_bytes())).is_ok());
    }

    #[test]
    fn content_must_match_the_extension() {
        let e = extract(&file("fake.pdf", b"plain text pretending")).unwrap_err().to_string();
        assert!(e.contains("\"fake.pdf\" is not a PDF"), "{e}");
        let e = extract(&file("fake.docx", b"plain")).unwrap_err().to_string();
        assert!(e.contains("is not a DOCX"), "{e}");
        let e = extract(&file("x.txt", b"%PDF-1.4 binary")).unwrap_err().to_string();
        assert!(e.contains("binary document"), "{e}");
        let e = extract(&file("x.txt", &[0xff, 0xfe, 0x00])).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
        let e = extract(&file("x.rtf", b"{\\rtf1}")).unwrap_err().to_string();
        assert!(e.contains("txt, md, csv, html, pdf, docx"), "{e}");
        let e = extract(&file("broken.pdf", b"%PDF-1.4\n garbage")).unwrap_err().to_string();
        assert!(e.contains("cannot be read as a PDF"), "{e}");
        let e = extract(&file("broken.docx", b"PK\x03\x04garbage")).unwrap_err().to_string();
        assert!(e.contains("cannot be read as a DOCX"), "{e}");
        let e = extract(&file("empty.txt", b" \n\n ")).unwrap_err().to_string();
        assert!(e.contains("\"empty.txt\" yields no text"), "{e}");
    }

    #[test]
    fn sizes_are_bounded() {
        assert!(check_sizes(&[]).is_err());
        let big = file("big.txt", &vec![b'a'; MAX_FILE_BYTES + 1]);
        assert!(matches!(check_sizes(&[big]), Err(AppError::TooLarge(_))));
        let many: Vec<_> = (0..6).map(|i| file(&format!("{i}.txt"), &vec![b'a'; MAX_FILE_BYTES])).collect();
        assert!(matches!(check_sizes(&many), Err(AppError::TooLarge(_))));
    }

    #[test]
    fn the_upload_keys_decide_and_are_named() {
        use crate::policy::registry::Layer;
        let r = |key: &str, value, source| Resolved {
            key: key.into(),
            value,
            source,
            layers: vec![],
            warnings: vec![],
            admin_version: 0,
            updated_by: None,
            updated_at: None,
        };
        let resolved = vec![
            r(keys::UPLOAD_MAX_FILES, serde_json::json!(2), Layer::Admin),
            r(keys::UPLOAD_EXTENSIONS, serde_json::json!(["txt", "md"]), Layer::Default),
        ];
        let limits = UploadLimits::from_resolved(&resolved);
        assert!(limits.check(&["a.txt".into(), "b.MD".into()]).is_ok());
        let e = limits.check(&["a.txt".into(), "b.txt".into(), "c.txt".into()]).unwrap_err().to_string();
        assert_eq!(e, "upload.max_files_per_batch is 2 (source=admin); 3 files were sent");
        let e = limits.check(&["a.pdf".into()]).unwrap_err().to_string();
        assert_eq!(
            e,
            "upload.allowed_extensions is [\"txt\",\"md\"] (source=default); \"a.pdf\" has extension \"pdf\""
        );
        let e = limits.check(&["README".into()]).unwrap_err().to_string();
        assert!(e.ends_with("\"README\" has no extension"), "{e}");
    }
}
